// The pre-tokenizer split: a regex from tokenizer.json (Oniguruma dialect, as
// Hugging Face tokenizers runs it) compiled with PCRE2 in UTF mode with JIT,
// applied with the "Isolated" behaviour: every match is a piece and so is
// every gap between matches.
//
// Dialect: PCRE2 and Oniguruma agree on this pattern except for `\s`/`\S`:
// Oniguruma's \s is exactly Unicode White_Space, PCRE2's also takes U+180E.
// The pattern is rewritten so `\s` names the White_Space set explicitly.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

struct pcre2_real_code_8;
struct pcre2_real_match_data_8;

namespace dms {

// Rewrites \s and \S of an Oniguruma pattern into explicit White_Space
// classes. Errors: INVALID_ARGUMENT for \S inside a character class.
StatusOr<std::string> TranslateOnigPattern(std::string_view pattern);

class SplitRegex {
 public:
  struct Piece {
    uint32_t begin, end;  // byte offsets into the text
  };

  // Per-caller match state; one per thread (Split is const and thread-safe
  // as long as each thread uses its own Scratch).
  class Scratch {
   public:
    Scratch() = default;
    ~Scratch();
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;

   private:
    friend class SplitRegex;
    pcre2_real_match_data_8* match_data_ = nullptr;
  };

  // `pattern` is in Oniguruma syntax (translated here). Errors:
  // INVALID_ARGUMENT naming the pattern and PCRE2's message.
  static StatusOr<std::unique_ptr<SplitRegex>> Compile(std::string_view pattern);
  ~SplitRegex();
  SplitRegex(const SplitRegex&) = delete;
  SplitRegex& operator=(const SplitRegex&) = delete;

  // Appends the pieces of `text` (valid UTF-8) in order to *pieces; they
  // cover the text exactly. Never fails: if the JIT stack overflows on a
  // pathological input the match is retried by the interpreter.
  void Split(std::string_view text, Scratch* scratch, std::vector<Piece>* pieces) const;

  bool jit() const { return jit_; }

 private:
  SplitRegex() = default;
  // Next match at or after `start`; false when none. Offsets into text.
  bool NextMatch(std::string_view text, size_t start, Scratch* scratch, size_t* mbegin,
                 size_t* mend) const;

  pcre2_real_code_8* code_ = nullptr;
  bool jit_ = false;
};

}  // namespace dms
