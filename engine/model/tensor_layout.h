// The tensors a Qwen3(-DMS) config implies: Hugging Face names and shapes.
// One list drives both the checkpoint loader (what must be present) and the
// demo checkpoint generator (what to write), so they cannot disagree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/model/model_config.h"

namespace dms {

enum class TensorRole {
  kEmbedTokens, kFinalNorm, kLmHead,
  kInputNorm, kQProj, kKProj, kVProj, kOProj, kQBias, kKBias, kVBias, kOBias,
  kQNorm, kKNorm, kDmsAlphaNorm, kDmsAlpha,
  kPostAttentionNorm, kGateProj, kUpProj, kDownProj,
};

struct TensorSlot {
  std::string name;            // "model.layers.3.self_attn.q_proj.weight"
  std::vector<int64_t> shape;  // [out, in] for linear weights
  TensorRole role;
  int layer = -1;              // -1 for model-level tensors
};

// Every tensor the config requires, in Hugging Face state_dict order
// (embeddings, layers 0..L-1, final norm, lm_head). lm_head is listed only
// when the embeddings are not tied; biases only with attention_bias; the
// dms_proj_alpha(_norm) pair only for the projection variant.
std::vector<TensorSlot> ExpectedTensors(const ModelConfig& config);

}  // namespace dms
