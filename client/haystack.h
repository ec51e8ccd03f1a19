// Needle-in-a-haystack prompts: a fact (the "needle") placed at a chosen depth
// of filler prose padded to a target length in tokens, then a question about
// it. Lengths are measured with the served model's tokenizer, through a
// token-counting callback (the server's Tokenize RPC in practice).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/status.h"

namespace dms::client {

inline constexpr char kNeedleFact[] = "The capital of Freedonia is Silverton.";
inline constexpr char kNeedleAnswer[] = "Silverton";
inline constexpr char kNeedleQuestion[] =
    "Based only on the text above, what is the capital of Freedonia? Answer in one short sentence.";

// How the prompt becomes chat messages. kSplit sends the document (filler
// with the fact) and the question as two user messages, kvpress's
// context/question split: the question is the last user message, which the
// server never prunes, and a training-free KV policy may prune the document.
// kSingle sends one user message holding both; the server then protects all
// of it, so such a policy prunes nothing (DMS evicts either way).
enum class NeedleLayout { kSplit, kSingle };
// "split" or "single"; INVALID_ARGUMENT naming --layout otherwise.
StatusOr<NeedleLayout> ParseNeedleLayout(const std::string& name);
const char* NeedleLayoutName(NeedleLayout layout);

// Token counts of (a) the whole prompt as the model will see it, given its
// user messages in order (chat template included), and (b) a bare piece of text.
struct TokenCounters {
  std::function<StatusOr<int64_t>(const std::vector<std::string>& user_messages)> prompt;
  std::function<StatusOr<int64_t>(const std::string& text)> text;
};

struct NeedleSpec {
  int64_t target_tokens = 4096;  // the whole prompt, template included
  double depth = 0.5;            // where the fact sits in the filler, in [0, 1]
  uint64_t seed = 0;             // which filler sentences, in which order
  NeedleLayout layout = NeedleLayout::kSplit;
};

struct NeedlePrompt {
  // kSplit: {filler with the fact, question}; kSingle: {filler with the
  // fact + "\n\n" + question}.
  std::vector<std::string> user_messages;
  int64_t prompt_tokens = 0;  // measured, <= target_tokens
  int64_t filler_tokens = 0;  // estimated from per-sentence counts
  double depth = 0;           // the fact's actual depth in the filler (by tokens)
};

// The prompt with the most filler whose measured length does not exceed the
// target. FAILED_PRECONDITION when even no filler exceeds it.
StatusOr<NeedlePrompt> BuildNeedlePrompt(const NeedleSpec& spec, const TokenCounters& counters);

// The user messages for given filler sentences with the fact after
// `needle_after` of them (exposed for tests).
std::vector<std::string> AssembleNeedleMessages(const std::vector<std::string>& sentences, size_t needle_after,
                                                NeedleLayout layout);

// The filler sentences, in a seeded order (a few dozen, then repeated).
std::vector<std::string> FillerSentences(uint64_t seed, size_t count);

}  // namespace dms::client
