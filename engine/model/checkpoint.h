// A loaded Qwen3(-DMS) checkpoint: config plus every weight, validated.
//
// Load() reads DIR/config.json, then DIR/model.safetensors or the shards listed
// in DIR/model.safetensors.index.json, mmaps them, and checks that every
// tensor the config implies exists with the right shape and a supported dtype
// (bf16, f16, f32). Weights stay in the mapped files (no copy); backends
// convert or upload them as they need. Immutable after Load: safe to read from
// any thread.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/model/model_config.h"
#include "engine/model/safetensors.h"
#include "common/status.h"

namespace dms {

// Shapes follow Hugging Face nn.Linear: [out_features, in_features].
struct LayerWeights {
  const TensorView* input_layernorm = nullptr;           // [D]
  const TensorView* q_proj = nullptr;                    // [Hq*hd, D]
  const TensorView* k_proj = nullptr;                    // [Hkv*hd, D]
  const TensorView* v_proj = nullptr;                    // [Hkv*hd, D]
  const TensorView* o_proj = nullptr;                    // [D, Hq*hd]
  const TensorView* q_bias = nullptr;                    // [Hq*hd]   attention_bias only
  const TensorView* k_bias = nullptr;                    // [Hkv*hd]  attention_bias only
  const TensorView* v_bias = nullptr;                    // [Hkv*hd]  attention_bias only
  const TensorView* o_bias = nullptr;                    // [D]       attention_bias only
  const TensorView* q_norm = nullptr;                    // [hd]
  const TensorView* k_norm = nullptr;                    // [hd]
  const TensorView* post_attention_layernorm = nullptr;  // [D]
  const TensorView* gate_proj = nullptr;                 // [I, D]
  const TensorView* up_proj = nullptr;                   // [I, D]
  const TensorView* down_proj = nullptr;                 // [D, I]
  // Projection-variant DMS (dms_separate_alpha) only:
  const TensorView* dms_proj_alpha_norm = nullptr;       // [D]
  const TensorView* dms_proj_alpha = nullptr;            // [Hkv, D]
};

struct ModelWeights {
  const TensorView* embed_tokens = nullptr;  // [vocab, D]
  const TensorView* final_norm = nullptr;    // [D]  model.norm.weight
  const TensorView* lm_head = nullptr;       // [vocab, D] (== embed_tokens when tied)
  std::vector<LayerWeights> layers;
};

// DIR/config.json checked against the weights' headers without binding any
// tensor: num_hidden_layers is at most the layers the tensor names hold. What
// a caller may size things by (dms-server's per-layer metrics) before
// Checkpoint::Load. Errors as Load's.
StatusOr<ModelConfig> LoadModelConfig(const std::string& model_dir);

class Checkpoint {
 public:
  // Errors are one line: "<file>: <tensor>: expected shape [128, 96], found [96, 128]",
  // "<dir>/model.safetensors: missing tensor model.layers.1.mlp.up_proj.weight", ...
  static StatusOr<std::unique_ptr<Checkpoint>> Load(const std::string& model_dir);

  const std::string& dir() const { return dir_; }
  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  // All files mapped (one, or the shards in index order).
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  int64_t num_parameters() const;  // distinct tensors (tied head counted once)
  // True when loaded through model.safetensors.index.json.
  bool sharded() const { return sharded_; }
  // Tensors present in the checkpoint that the config does not use (ignored),
  // e.g. a tied checkpoint's lm_head.weight or rotary buffers. Sorted.
  const std::vector<std::string>& unexpected_tensors() const { return unexpected_; }
  // Summary for `dms-engine info`: config, parameter count, dtypes, files.
  std::string SummaryJson(int indent = 2) const;

 private:
  // Every distinct tensor the weights point at (tied head once), in load order.
  std::vector<const TensorView*> UsedTensors() const;

  std::string dir_;
  ModelConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  ModelWeights weights_;
  bool sharded_ = false;
  std::vector<std::string> unexpected_;
};

}  // namespace dms
