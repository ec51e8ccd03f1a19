// Needle-in-a-haystack prompts: a fact (the "needle") placed at a chosen depth
// of filler prose padded to a target length in tokens, then a question about
// it. Lengths are measured with the served model's tokenizer, through a
// token-counting callback (the server's Tokenize RPC in practice).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "engine/util/status.h"

namespace dms::client {

inline constexpr char kNeedleFact[] = "The capital of Freedonia is Silverton.";
inline constexpr char kNeedleAnswer[] = "Silverton";
inline constexpr char kNeedleQuestion[] =
    "Based only on the text above, what is the capital of Freedonia? Answer in one short sentence.";

// Token counts of (a) the whole prompt as the model will see it, given the
// user message (chat template included), and (b) a bare piece of text.
struct TokenCounters {
  std::function<StatusOr<int64_t>(const std::string& user_message)> prompt;
  std::function<StatusOr<int64_t>(const std::string& text)> text;
};

struct NeedleSpec {
  int64_t target_tokens = 4096;  // the whole prompt, template included
  double depth = 0.5;            // where the fact sits in the filler, in [0, 1]
  uint64_t seed = 0;             // which filler sentences, in which order
};

struct NeedlePrompt {
  std::string user_message;   // filler with the fact, then the question
  int64_t prompt_tokens = 0;  // measured, <= target_tokens
  int64_t filler_tokens = 0;  // estimated from per-sentence counts
  double depth = 0;           // the fact's actual depth in the filler (by tokens)
};

// The prompt with the most filler whose measured length does not exceed the
// target. FAILED_PRECONDITION when even no filler exceeds it.
StatusOr<NeedlePrompt> BuildNeedlePrompt(const NeedleSpec& spec, const TokenCounters& counters);

// The user message for given filler sentences with the fact after
// `needle_after` of them (exposed for tests).
std::string AssembleNeedleMessage(const std::vector<std::string>& sentences, size_t needle_after);

// The filler sentences, in a seeded order (a few dozen, then repeated).
std::vector<std::string> FillerSentences(uint64_t seed, size_t count);

}  // namespace dms::client
