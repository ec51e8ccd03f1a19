// Qwen3 (+ DMS) model configuration parsed from a Hugging Face config.json.
// See docs/ and ../shared/spec/dms.md for the meaning of every DMS field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace dms {

enum class DmsAlphaPer { kHead, kLayer };

struct DmsConfig {
  // True when config.json has any dms_* key. A plain Qwen3 checkpoint has
  // none: no decisions, no query zeroing, a dense cache.
  bool enabled = false;
  float alpha_scale = 100.0f;           // dms_alpha_scale
  float initial_alpha_offset = 5.0f;    // dms_initial_alpha_offset
  int window_size = 512;                // dms_window_size (W)
  double cr = 8.0;                      // dms_cr (informational)
  bool separate_alpha = false;          // dms_separate_alpha: projection variant
  DmsAlphaPer alpha_per = DmsAlphaPer::kHead;  // dms_alpha_per
  bool disable_eviction = false;        // dms_disable_eviction
};

struct ModelConfig {
  std::string model_type;      // "qwen3"
  int hidden_size = 0;         // D
  int intermediate_size = 0;   // MLP width
  int num_layers = 0;          // num_hidden_layers
  int num_q_heads = 0;         // num_attention_heads (Hq)
  int num_kv_heads = 0;        // num_key_value_heads (Hkv)
  int head_dim = 0;            // hd (defaults to hidden_size / Hq when absent)
  int vocab_size = 0;
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-6;
  double rope_theta = 1e6;     // top level or rope_parameters.rope_theta
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  std::string torch_dtype;     // informational ("bfloat16")
  int bos_token_id = -1;       // -1 when absent
  std::vector<int> eos_token_ids;  // eos_token_id (int or list)
  DmsConfig dms;

  int group_size() const { return num_q_heads / num_kv_heads; }  // g = Hq / Hkv
};

// Bounds ParseModelConfig enforces beyond "positive and at most 2^30" per
// size (docs/security.md). The context must hold a prompt, a generated token
// and dms-server's warm-up (4 tokens by default); tables sized by it (the
// CUDA backend's RoPE table, the DMS window ring) stay small. Qwen3 models
// use 40,960 (262,144 for the 2507 releases).
inline constexpr int kMinPositionEmbeddings = 16;
inline constexpr int kMaxPositionEmbeddings = 1 << 20;
// Every product of sizes that one tensor or one per-sequence table holds
// (vocab_size * hidden_size, ...) fits an int; Qwen3-32B's largest is 778M.
inline constexpr int64_t kMaxSizeProduct = INT32_MAX;

// Parses config.json text. `source` names the file in error messages.
// Errors are one line naming the file and the field, e.g.
//   "config.json: unsupported config: use_sliding_window is true (sliding-window attention is not supported)"
//   "config.json: rope_scaling type 'yarn' is not supported (only default RoPE)"
//   "config.json: num_attention_heads (6) is not a multiple of num_key_value_heads (4)"
//   "config.json: dms_window_size (1073741824) is larger than max_position_embeddings (40960)"
// The text must be within kConfigJsonLimits (common/bounded_json.h).
StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& source);

// Reads and parses DIR/config.json (a regular file within kConfigJsonLimits),
// without looking at the weights; LoadModelConfig (checkpoint.h) checks the
// config against them too.
StatusOr<ModelConfig> ReadModelConfigFile(const std::string& model_dir);

// The config as JSON (for `dms-engine info` and GetModelInfo).
std::string ModelConfigToJson(const ModelConfig& config, int indent = 2);

}  // namespace dms
