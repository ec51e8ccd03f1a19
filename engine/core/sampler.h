// Sampler: turns one row of logits into the next token for one request.
//
// Order (as vLLM): repetition penalty (HF rule: positive logits divided,
// negative multiplied, over prompt and output tokens), then presence and
// frequency penalties (OpenAI rule, output tokens), then greedy argmax when
// temperature is 0, else temperature, top-k, top-p, min-p and a draw.
// Reported logprobs are the model's own distribution (log-softmax of the raw
// logits), as vLLM reports by default.
//
// Randomness is counter-based: the draw for output token n of a request is a
// pure function of (seed, n), so the same seed gives the same output however
// the request is batched, and a backend that samples on its device
// (SampleRow is its reference) reproduces the stream.
//
// Threading: one Sampler per request; not shared between threads.
#pragma once

#include <cstdint>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/core/backend.h"
#include "engine/core/sampling_params.h"

namespace dms {

// Uniform double in [0, 1) for draw `counter` of stream `seed` (SplitMix64).
double CounterUniform(uint64_t seed, uint64_t counter);

// What the penalties see of one request: the tokens of its prompt and
// output (repetition penalty) and how often each was generated (presence and
// frequency penalties).
class TokenHistory {
 public:
  explicit TokenHistory(int vocab_size) : seen_(vocab_size, 0) {}
  void AddPrompt(std::span<const int32_t> tokens);
  void AddOutput(int32_t id);
  bool seen(int32_t id) const { return seen_[id] != 0; }
  const std::unordered_map<int32_t, int>& output_counts() const { return out_count_; }

 private:
  std::vector<uint8_t> seen_;                   // [vocab] in prompt or output
  std::unordered_map<int32_t, int> out_count_;  // output token counts
};

// Scratch reused across SampleRow calls (no allocation per token).
struct SampleScratch {
  std::vector<float> work;     // [vocab]
  std::vector<int32_t> order;  // [vocab]
  std::vector<double> probs;
};

// One token from one logit row [vocab] for `params` (valid), given the row's
// summary, the draw `uniform` in [0, 1) and the request's history. This is the
// reference every backend that samples on its device matches (given the same
// uniform, the same token).
SampledToken SampleRow(const SamplingParams& params, std::span<const float> logits,
                       const LogitSummary& summary, double uniform, const TokenHistory& history,
                       SampleScratch* scratch);

// argmax: the first index of the largest logit (std::max_element);
// log_sum_exp = log(sum(exp(row - max))) + max, summed in double in index
// order. The CUDA summary kernel (kernels/sampling.h) is checked against it.
LogitSummary SummarizeLogits(std::span<const float> logits);

class Sampler {
 public:
  // params must be valid (ValidateSamplingParams). seed: the resolved seed.
  Sampler(const SamplingParams& params, uint64_t seed, int vocab_size);

  // Records prompt tokens (repetition penalty applies to them).
  void AddPromptTokens(std::span<const int32_t> tokens);

  // Samples the next token from logits [vocab] and records it as output.
  SampledToken Sample(std::span<const float> logits);
  // The same, given the row's summary (SummarizeLogits) that the backend
  // already computed: its log-sum-exp is the reported logprobs' normaliser.
  SampledToken Sample(std::span<const float> logits, const LogitSummary& summary);

  // Whether Sample needs the whole row: false for greedy decoding without
  // penalties or top logprobs, where SampleFromSummary gives the same token.
  bool NeedsFullLogits() const;
  // The token Sample would pick, from the row's summary alone; only when
  // !NeedsFullLogits().
  SampledToken SampleFromSummary(const LogitSummary& summary);

  // The draw the next Sample uses: CounterUniform(seed, num_generated()).
  double NextUniform() const;
  // Records a token sampled elsewhere (on the device, with NextUniform()).
  void Accept(const SampledToken& token) { Record(token.id); }

  const SamplingParams& params() const { return params_; }
  const TokenHistory& history() const { return history_; }
  int num_generated() const { return num_generated_; }

 private:
  void Record(int32_t id);

  SamplingParams params_;
  uint64_t seed_;
  int vocab_size_;
  int num_generated_ = 0;
  TokenHistory history_;
  SampleScratch scratch_;
};

}  // namespace dms
