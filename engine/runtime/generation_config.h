// The sampling defaults a checkpoint ships in generation_config.json (Qwen3:
// temperature 0.6, top_p 0.95, top_k 20). A request that leaves a field unset
// gets the checkpoint's value, as transformers and vLLM apply them; fields the
// file does not set keep the plain defaults (temperature 1, no truncation).
#pragma once

#include <optional>
#include <string>

#include "engine/core/sampling_params.h"
#include "common/status.h"

namespace dms {

struct GenerationDefaults {
  std::optional<float> temperature, top_p, min_p, repetition_penalty;
  std::optional<int> top_k;

  // The parameters of a request that sets none of these fields.
  SamplingParams Apply(SamplingParams plain) const;
  bool empty() const { return !temperature && !top_p && !min_p && !repetition_penalty && !top_k; }
};

// Parses generation_config.json text. INVALID_ARGUMENT naming the file and
// field for a wrong type or a value outside the range a request may send.
StatusOr<GenerationDefaults> ParseGenerationConfig(const std::string& json_text,
                                                   const std::string& source);

// <model_dir>/generation_config.json; none when the file is absent.
StatusOr<GenerationDefaults> LoadGenerationConfig(const std::string& model_dir);

}  // namespace dms
