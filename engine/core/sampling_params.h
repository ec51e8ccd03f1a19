// Per-request sampling parameters and their validation.
#pragma once

#include <cstdint>
#include <optional>

#include "common/status.h"

namespace dms {

struct SamplingParams {
  float temperature = 1.0f;         // >= 0; 0 = greedy
  float top_p = 1.0f;               // (0, 1]
  int top_k = 0;                    // 0 (or -1) = off; else keep the k most likely
  float min_p = 0.0f;               // [0, 1]: drop tokens below min_p * p(max)
  std::optional<uint64_t> seed;     // same seed, same output; unset = random
  float repetition_penalty = 1.0f;  // > 0; HF rule over prompt + output tokens
  float presence_penalty = 0.0f;    // [-2, 2]; OpenAI rule over output tokens
  float frequency_penalty = 0.0f;   // [-2, 2]; OpenAI rule over output tokens
  int logprobs = 0;                 // top-n logprobs per token, [0, 20]

  bool greedy() const { return temperature == 0.0f || top_k == 1; }
};

// INVALID_ARGUMENT naming the field and its allowed range, e.g.
// "temperature must be >= 0 and finite, got -1".
Status ValidateSamplingParams(const SamplingParams& params);

}  // namespace dms
