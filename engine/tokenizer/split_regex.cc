#include "engine/tokenizer/split_regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace dms {
namespace {

// Unicode White_Space (PropList.txt, unchanged since Unicode 6.3).
constexpr std::string_view kWhiteSpace =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";

std::string Pcre2Message(int code) {
  PCRE2_UCHAR buf[256];
  int n = pcre2_get_error_message(code, buf, sizeof(buf));
  return n < 0 ? "PCRE2 error " + std::to_string(code) : std::string(reinterpret_cast<char*>(buf));
}

}  // namespace

StatusOr<std::string> TranslateOnigPattern(std::string_view pattern) {
  std::string out;
  int class_depth = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      char e = pattern[++i];
      if (e == 's') {
        if (class_depth > 0) {
          out.append(kWhiteSpace);
        } else {
          out.append("[").append(kWhiteSpace).append("]");
        }
      } else if (e == 'S') {
        if (class_depth > 0) {
          return InvalidArgumentError("split regex: \\S inside a character class is not supported");
        }
        out.append("[^").append(kWhiteSpace).append("]");
      } else {
        out.push_back(c);
        out.push_back(e);
      }
      continue;
    }
    if (c == '[') {
      ++class_depth;
    } else if (c == ']' && class_depth > 0) {
      --class_depth;
    }
    out.push_back(c);
  }
  return out;
}

SplitRegex::Scratch::~Scratch() {
  if (match_data_ != nullptr) pcre2_match_data_free(match_data_);
}

StatusOr<std::unique_ptr<SplitRegex>> SplitRegex::Compile(std::string_view pattern) {
  DMS_ASSIGN_OR_RETURN(std::string translated, TranslateOnigPattern(pattern));
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code == nullptr) {
    return InvalidArgumentError("split regex does not compile at offset " + std::to_string(offset) +
                                ": " + Pcre2Message(error));
  }
  std::unique_ptr<SplitRegex> regex(new SplitRegex());
  regex->code_ = code;
  // JIT is an optimisation: without it the interpreter gives the same matches.
  regex->jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
  return regex;
}

SplitRegex::~SplitRegex() {
  if (code_ != nullptr) pcre2_code_free(code_);
}

bool SplitRegex::NextMatch(std::string_view text, size_t start, Scratch* scratch, size_t* mbegin,
                           size_t* mend) const {
  if (scratch->match_data_ == nullptr) {
    // One offset pair (the whole match) is all Split reads; a Scratch may
    // then serve any pattern (rc 0 only means groups did not fit).
    scratch->match_data_ = pcre2_match_data_create(1, nullptr);
  }
  auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  int rc = jit_ ? pcre2_jit_match(code_, subject, text.size(), start, PCRE2_NO_UTF_CHECK,
                                  scratch->match_data_, nullptr)
                : PCRE2_ERROR_JIT_BADOPTION;
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT || rc == PCRE2_ERROR_JIT_BADOPTION) {
    // The interpreter keeps its backtracking state on the heap.
    rc = pcre2_match(code_, subject, text.size(), start, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT,
                     scratch->match_data_, nullptr);
  }
  if (rc < 0) return false;  // no match (or a resource error: the rest is one gap)
  PCRE2_SIZE* ov = pcre2_get_ovector_pointer(scratch->match_data_);
  *mbegin = ov[0];
  *mend = ov[1];
  return true;
}

void SplitRegex::Split(std::string_view text, Scratch* scratch, std::vector<Piece>* pieces) const {
  size_t prev = 0;  // end of the last piece
  size_t from = 0;  // where the next search starts
  while (from < text.size()) {
    size_t b, e;
    if (!NextMatch(text, from, scratch, &b, &e)) break;
    if (e == b) {
      // Empty matches make no piece (Hugging Face drops empty pieces); the
      // search moves on one code point and the gap keeps growing.
      from = b + 1;
      while (from < text.size() && (static_cast<uint8_t>(text[from]) & 0xC0) == 0x80) ++from;
      continue;
    }
    if (b > prev) pieces->push_back({static_cast<uint32_t>(prev), static_cast<uint32_t>(b)});
    pieces->push_back({static_cast<uint32_t>(b), static_cast<uint32_t>(e)});
    prev = from = e;
  }
  if (prev < text.size()) {
    pieces->push_back({static_cast<uint32_t>(prev), static_cast<uint32_t>(text.size())});
  }
}

}  // namespace dms
