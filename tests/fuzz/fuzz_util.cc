#include "tests/fuzz/fuzz_util.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <utility>
#include <vector>

namespace dms::fuzz {

void Fail(const char* file, int line, const std::string& what) {
  std::fprintf(stderr, "fuzz property violated at %s:%d: %s\n", file, line, what.c_str());
  std::fflush(stderr);
  std::abort();
}

std::string Printable(std::string_view s, size_t max_bytes) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < s.size() && i < max_bytes; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (s.size() > max_bytes) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

bool IsOneLine(std::string_view s) { return s.find_first_of(std::string_view("\n\r\0", 3)) == s.npos; }

void CheckError(const Status& status, std::string_view prefix) {
  CheckErrorAnyPrefix(status, {prefix});
}

void CheckErrorAnyPrefix(const Status& status, std::initializer_list<std::string_view> prefixes) {
  FUZZ_CHECK(!status.ok(), "an error was expected");
  const std::string& m = status.message();
  FUZZ_CHECK(!m.empty(), "empty error message (" + std::string(StatusCodeName(status.code())) + ")");
  FUZZ_CHECK(IsOneLine(m), "error message is not one line: \"" + Printable(m) + "\"");
  bool named = false;
  for (std::string_view p : prefixes) named = named || m.starts_with(p);
  FUZZ_CHECK(named, "error message does not start with the file or field it is about: \"" +
                        Printable(m) + "\"");
}

int TreeDepth(const nlohmann::json& root) {
  int deepest = 0;
  std::vector<std::pair<const nlohmann::json*, int>> stack{{&root, 0}};
  while (!stack.empty()) {
    const auto [j, depth] = stack.back();
    stack.pop_back();
    if (!j->is_structured()) continue;
    deepest = std::max(deepest, depth + 1);
    for (const nlohmann::json& child : *j) stack.emplace_back(&child, depth + 1);
  }
  return deepest;
}

bool CheckJsonLimitsContract(std::string_view text, const JsonLimits& limits, const Status& status,
                             const std::string& prefix) {
  const std::string too_large =
      prefix + " is larger than " + std::to_string(limits.max_bytes) + " bytes";
  const std::string too_deep =
      prefix + " is nested deeper than " + std::to_string(limits.max_depth) + " levels";
  const std::string& got = status.message();
  if (text.size() > limits.max_bytes) {
    FUZZ_CHECK(got == too_large,
               "text of " + std::to_string(text.size()) + " bytes: \"" + Printable(got) + "\"");
    return true;
  }
  FUZZ_CHECK(got != too_large, "refused " + std::to_string(text.size()) + " bytes as too large");
  // nlohmann's parser keeps its own stack: safe at any depth, as is the destructor.
  const nlohmann::json ref = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (ref.is_discarded()) {
    FUZZ_CHECK(!status.ok(), "accepted text that is not JSON");
    return got == too_deep;
  }
  const int depth = TreeDepth(ref);
  if (depth > limits.max_depth) {
    FUZZ_CHECK(got == too_deep,
               "JSON " + std::to_string(depth) + " levels deep: \"" + Printable(got) + "\"");
    return true;
  }
  FUZZ_CHECK(got != too_deep, "refused JSON " + std::to_string(depth) + " levels deep as too deep");
  return false;
}

uint32_t ByteReader::U32() {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(Byte()) << (8 * i);
  return v;
}

std::string_view ByteReader::Take(size_t n) {
  n = std::min(n, size_ - pos_);
  std::string_view out(reinterpret_cast<const char*>(data_) + pos_, n);
  pos_ += n;
  return out;
}

const Tokenizer& QwenTokenizer() {
  static const Tokenizer* const kTokenizer = [] {
    const char* env = std::getenv("DMS_TOKENIZER_DIR");
    const std::string dir = env && *env ? env : DMS_DEFAULT_TOKENIZER_DIR;
    StatusOr<std::unique_ptr<Tokenizer>> t = Tokenizer::Load(dir);
    if (!t.ok()) {
      std::fprintf(stderr, "fuzz: cannot load the Qwen3 tokenizer from '%s' (run scripts/setup.sh): %s\n",
                   dir.c_str(), t.status().message().c_str());
      std::exit(2);
    }
    return t->release();  // lives for the whole process
  }();
  return *kTokenizer;
}

std::string ReferenceNfc(std::string_view text) {
  utf8proc_uint8_t* out = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                   static_cast<utf8proc_ssize_t>(text.size()), &out,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  FUZZ_CHECK(n >= 0, "utf8proc rejected text the tokenizer treats as valid UTF-8: " + Printable(text));
  std::string result(reinterpret_cast<const char*>(out), static_cast<size_t>(n));
  std::free(out);
  return result;
}

}  // namespace dms::fuzz
