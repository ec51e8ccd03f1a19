// Demo Qwen3-DMS checkpoints for tests and benchmarks (`dms-engine make-model`):
// random weights (demo_weights.h) in the real Hugging Face layout, config.json,
// and a copy of the Qwen3 tokenizer files.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "engine/model/model_config.h"
#include "common/status.h"

namespace dms {

enum class DemoDmsVariant { kNeuron, kProjection, kNone };

struct DemoModelOptions {
  std::string preset = "tiny";  // tiny | small | qwen3-8b
  uint64_t seed = 0;
  double evict_rate = 0.875;
  DemoDmsVariant variant = DemoDmsVariant::kNeuron;
  // Overrides of the preset geometry; unset keeps the preset's value.
  std::optional<int> num_layers, hidden_size, num_q_heads, num_kv_heads, head_dim,
      intermediate_size, vocab_size, window_size;
  std::optional<bool> tie_word_embeddings;
  std::string tokenizer_dir;  // copied when it holds tokenizer.json; "" = none
  int threads = 1;
  uint64_t max_shard_bytes = 4'000'000'000;
};

struct DemoModelReport {
  ModelConfig config;
  std::vector<std::string> files;  // written, relative to the output directory
  int64_t num_parameters = 0;
  uint64_t total_bytes = 0;
  bool tokenizer_copied = false;
  std::string tokenizer_note;  // why not, when not copied
};

// Names of the presets, for help text: "tiny, small, qwen3-8b".
std::string DemoPresetNames();

// The full Hugging Face config.json for the options (preset + overrides).
// Errors: unknown preset, or a geometry ParseModelConfig rejects.
StatusOr<std::string> DemoConfigJson(const DemoModelOptions& options);

// Writes the checkpoint into `out_dir` (created; must not exist or be empty),
// then loads it back with Checkpoint::Load as a check.
StatusOr<DemoModelReport> MakeDemoModel(const std::string& out_dir,
                                        const DemoModelOptions& options);

}  // namespace dms
