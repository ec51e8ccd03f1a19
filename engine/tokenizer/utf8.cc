#include "engine/tokenizer/utf8.h"

namespace dms::utf8 {
namespace {

// Well-formed sequences (Unicode table 3-7): the lead byte fixes the length
// and the allowed range of the second byte; later bytes are 80..BF.
struct LeadInfo {
  uint8_t length;  // 0: never a lead byte
  uint8_t lo, hi;  // allowed range of the second byte
};

constexpr LeadInfo Lead(uint8_t b) {
  if (b < 0x80) return {1, 0, 0};
  if (b < 0xC2) return {0, 0, 0};
  if (b < 0xE0) return {2, 0x80, 0xBF};
  if (b == 0xE0) return {3, 0xA0, 0xBF};
  if (b == 0xED) return {3, 0x80, 0x9F};
  if (b < 0xF0) return {3, 0x80, 0xBF};
  if (b == 0xF0) return {4, 0x90, 0xBF};
  if (b < 0xF4) return {4, 0x80, 0xBF};
  if (b == 0xF4) return {4, 0x80, 0x8F};
  return {0, 0, 0};
}

// Number of bytes of s[pos..] that match the sequence pattern of the lead
// byte, up to its length (the lead byte itself counts).
size_t MatchingPrefix(std::string_view s, size_t pos, const LeadInfo& info) {
  size_t n = 1;
  for (; n < info.length && pos + n < s.size(); ++n) {
    uint8_t b = static_cast<uint8_t>(s[pos + n]);
    uint8_t lo = n == 1 ? info.lo : 0x80, hi = n == 1 ? info.hi : 0xBF;
    if (b < lo || b > hi) break;
  }
  return n;
}

}  // namespace

size_t ValidSequenceLength(std::string_view s, size_t pos) {
  LeadInfo info = Lead(static_cast<uint8_t>(s[pos]));
  if (info.length <= 1) return info.length;
  return MatchingPrefix(s, pos, info) == info.length ? info.length : 0;
}

size_t MaximalSubpartLength(std::string_view s, size_t pos) {
  LeadInfo info = Lead(static_cast<uint8_t>(s[pos]));
  if (info.length <= 1) return 1;
  return MatchingPrefix(s, pos, info);
}

bool IsIncompletePrefix(std::string_view s, size_t pos) {
  LeadInfo info = Lead(static_cast<uint8_t>(s[pos]));
  if (info.length <= 1) return false;
  size_t n = MatchingPrefix(s, pos, info);
  return n < info.length && pos + n == s.size();
}

void AppendLossy(std::string_view s, std::string* out) {
  size_t i = 0, run = 0;  // [run, i): well-formed bytes not yet copied
  while (i < s.size()) {
    if (static_cast<uint8_t>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t len = ValidSequenceLength(s, i);
    if (len > 0) {
      i += len;
      continue;
    }
    out->append(s.substr(run, i - run));
    out->append(kReplacement);
    i += MaximalSubpartLength(s, i);
    run = i;
  }
  out->append(s.substr(run));
}

std::string DecodeLossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  AppendLossy(s, &out);
  return out;
}

bool IsValid(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t len = ValidSequenceLength(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

char32_t DecodeAt(std::string_view s, size_t pos, size_t* len) {
  auto b = [&](size_t k) { return static_cast<char32_t>(static_cast<uint8_t>(s[pos + k])); };
  char32_t c0 = b(0);
  if (c0 < 0x80) {
    *len = 1;
    return c0;
  }
  if (c0 < 0xE0) {
    *len = 2;
    return ((c0 & 0x1F) << 6) | (b(1) & 0x3F);
  }
  if (c0 < 0xF0) {
    *len = 3;
    return ((c0 & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
  }
  *len = 4;
  return ((c0 & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
}

void Append(char32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

}  // namespace dms::utf8
