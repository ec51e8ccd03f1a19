// Helpers shared by the fuzz targets (tests/fuzz/*_fuzz.cc): property checks
// that abort with a readable line (libFuzzer then saves the input as a crash),
// a byte reader that turns fuzz input into structured choices, and the real
// Qwen3 tokenizer loaded once per process.
//
// The same targets also build with g++ against regression_main.cc, so nothing
// here may depend on libFuzzer or clang.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "engine/tokenizer/tokenizer.h"
#include "common/bounded_json.h"
#include "common/status.h"

namespace dms::fuzz {

// Prints "fuzz property violated at FILE:LINE: WHAT" to stderr and aborts.
[[noreturn]] void Fail(const char* file, int line, const std::string& what);

// Checks a property; `what` is only built when it fails.
#define FUZZ_CHECK(cond, what)                                                    \
  do {                                                                            \
    if (!(cond)) ::dms::fuzz::Fail(__FILE__, __LINE__, std::string(#cond) + ": " + (what)); \
  } while (0)

// `s` with control and non-ASCII bytes as \xNN, cut to `max_bytes` (for failure text).
std::string Printable(std::string_view s, size_t max_bytes = 300);

// True when `s` has no line break or NUL: a message that stays one log line.
bool IsOneLine(std::string_view s);

// The house rule for every error a bad input produces: not OK, a non-empty
// one-line message, starting with `prefix` (the file or field it names).
void CheckError(const Status& status, std::string_view prefix);
// Same, where the message must start with one of several field names.
void CheckErrorAnyPrefix(const Status& status, std::initializer_list<std::string_view> prefixes);

// Depth of a parsed tree ("1" -> 0, "[]" -> 1), walked with an explicit
// stack: recursion over a deep input would overflow the fuzzer's stack.
int TreeDepth(const nlohmann::json& j);

// The bounded reader's contract (common/bounded_json.h) for `text` read
// under `limits` and answered with `status`; `prefix` is "<source>: <what>".
// Text over the size limit, or valid JSON deeper than the depth limit (by an
// independent nlohmann parse), is refused with exactly that limit's line;
// valid JSON within both limits never is. Invalid JSON must be refused, with
// the depth line or another. True when `status` is a limit's refusal (the
// caller then checks nothing more).
bool CheckJsonLimitsContract(std::string_view text, const JsonLimits& limits, const Status& status,
                             const std::string& prefix);

// Reads structured choices from fuzz input; past the end it yields zeros.
class ByteReader {
 public:
  ByteReader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  uint8_t Byte() { return pos_ < size_ ? data_[pos_++] : 0; }
  bool Bool() { return Byte() & 1; }
  uint32_t U32();
  // Up to n bytes (fewer at the end).
  std::string_view Take(size_t n);
  // A length-prefixed string (one length byte, so at most 255 bytes).
  std::string_view ShortString() { return Take(Byte()); }
  std::string_view Rest() { return Take(size_ - pos_); }
  size_t remaining() const { return size_ - pos_; }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

// The real Qwen3 tokenizer ($DMS_TOKENIZER_DIR, else the directory CMake
// compiled in), loaded on first use; aborts with a clear line when missing.
const Tokenizer& QwenTokenizer();

// NFC of valid UTF-8 `text` by utf8proc's full algorithm: an oracle that is
// independent of the tokenizer's fast path (engine/tokenizer/nfc.h).
std::string ReferenceNfc(std::string_view text);

}  // namespace dms::fuzz
