// Loads what serving a model needs from its directory: the checkpoint, the
// sampling defaults of generation_config.json and, when present, the
// tokenizer (tokenizer.json + tokenizer_config.json).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/model/checkpoint.h"
#include "engine/runtime/generation_config.h"
#include "engine/tokenizer/tokenizer.h"
#include "common/status.h"

namespace dms {

struct LoadedModel {
  std::shared_ptr<const Checkpoint> checkpoint;
  std::shared_ptr<const Tokenizer> tokenizer;  // null when the model has none
  std::string tokenizer_path;                  // where it came from ("" if none)
  // EOS ids that end generation: config eos_token_id(s) plus the tokenizer's
  // eos and <|endoftext|>, deduplicated.
  std::vector<int32_t> eos_token_ids;
  GenerationDefaults generation_defaults;  // empty when the file is absent
};

// tokenizer_override: a tokenizer.json or directory to use instead of the
// model's own ("" = the model directory's, if any). A tokenizer whose vocab
// does not fit the model is an INVALID_ARGUMENT naming both sizes.
// read_generation_config false leaves generation_defaults empty and the file
// unread (dms-server --generation-config ignore).
StatusOr<LoadedModel> LoadModel(const std::string& model_dir, const std::string& tokenizer_override = "",
                                bool read_generation_config = true);

}  // namespace dms
