#include "engine/tokenizer/nfc.h"

#include <utf8proc.h>

#include <cstdlib>
#include <vector>

#include "engine/tokenizer/utf8.h"

namespace dms {
namespace {

constexpr char32_t kMaxCodePoint = 0x10FFFF;

// utf8proc marks code points that compose with a preceding one by setting
// bit 15 of comb_index (0xFFFF: takes no part in composition). Hangul
// vowel and trailing jamo compose algorithmically and carry no index.
bool ComposesWithPrevious(char32_t cp) {
  if ((cp >= 0x1161 && cp <= 0x1175) || (cp >= 0x11A8 && cp <= 0x11C2)) return true;
  uint16_t idx = utf8proc_get_property(static_cast<utf8proc_int32_t>(cp))->comb_index;
  return idx != 0xFFFF && (idx & 0x8000) != 0;
}

std::string RunUtf8proc(std::string_view text) {
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                    static_cast<utf8proc_ssize_t>(text.size()), &out,
                                    static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) return std::string(text);  // cannot happen for valid UTF-8
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

bool ComputeInert(char32_t cp) {
  if (cp < 0x80) return true;
  if (cp >= 0xD800 && cp <= 0xDFFF) return false;
  const utf8proc_property_t* p = utf8proc_get_property(static_cast<utf8proc_int32_t>(cp));
  if (p->combining_class != 0 || ComposesWithPrevious(cp)) return false;
  bool canonical_decomposition = p->decomp_seqindex != 0xFFFF && p->decomp_type == 0;
  if (!canonical_decomposition) return true;
  // A precomposed character is inert only if NFC keeps it and its
  // decomposition does not start with something that composes backwards.
  std::string s;
  utf8::Append(cp, &s);
  if (RunUtf8proc(s) != s) return false;
  utf8proc_int32_t decomposed[32];
  utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(cp), decomposed, 32,
                                               UTF8PROC_DECOMPOSE, nullptr);
  if (n <= 0 || n > 32) return false;
  return !ComposesWithPrevious(static_cast<char32_t>(decomposed[0]));
}

// One bit per code point, computed once (about 1 ms).
const std::vector<uint64_t>& InertBits() {
  static const std::vector<uint64_t> kBits = [] {
    std::vector<uint64_t> bits((kMaxCodePoint + 64) / 64, 0);
    for (char32_t cp = 0; cp <= kMaxCodePoint; ++cp) {
      if (ComputeInert(cp)) bits[cp >> 6] |= uint64_t{1} << (cp & 63);
    }
    return bits;
  }();
  return kBits;
}

}  // namespace

bool IsNfcInert(char32_t cp) {
  if (cp > kMaxCodePoint) return false;
  return (InertBits()[cp >> 6] >> (cp & 63)) & 1;
}

std::string_view NormalizeNfc(std::string_view text, std::string* scratch) {
  const std::vector<uint64_t>& bits = InertBits();
  auto inert = [&](char32_t cp) { return (bits[cp >> 6] >> (cp & 63)) & 1; };
  size_t copied = 0;       // text[0, copied) is already in *scratch
  size_t last_inert = 0;   // start of the last inert code point at or after `copied`
  bool rewritten = false;
  size_t i = 0;
  while (i < text.size()) {
    if (static_cast<uint8_t>(text[i]) < 0x80) {
      last_inert = i++;
      continue;
    }
    size_t len;
    char32_t cp = utf8::DecodeAt(text, i, &len);
    if (inert(cp)) {
      last_inert = i;
      i += len;
      continue;
    }
    // Window: the inert starter before the run (it may compose with the run)
    // through the last non-inert code point of the run.
    size_t start = last_inert >= copied ? last_inert : copied;
    size_t end = i + len;
    while (end < text.size()) {
      size_t l;
      char32_t c = utf8::DecodeAt(text, end, &l);
      if (inert(c)) break;
      end += l;
    }
    if (!rewritten) {
      scratch->clear();
      rewritten = true;
    }
    scratch->append(text.substr(copied, start - copied));
    scratch->append(RunUtf8proc(text.substr(start, end - start)));
    copied = end;
    last_inert = end;
    i = end;
  }
  if (!rewritten) return text;
  scratch->append(text.substr(copied));
  return *scratch;
}

}  // namespace dms
