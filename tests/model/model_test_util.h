// Builders for small (valid and deliberately broken) checkpoints, shared by the
// tests in tests/model. Header-only: each *_test.cc is its own binary.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "engine/model/counter_rng.h"
#include "engine/model/model_config.h"
#include "engine/model/safetensors_writer.h"
#include "engine/model/tensor_layout.h"
#include "tests/test_util.h"

namespace dms::testing {

// A small valid single-neuron Qwen3-DMS config. q_proj is [64, 48] (not
// square) so a transposed tensor is a shape error.
inline nlohmann::json SmallConfig() {
  return nlohmann::json{
      {"architectures", {"Qwen3ForCausalLM"}},
      {"model_type", "qwen3"},
      {"hidden_size", 48},
      {"intermediate_size", 96},
      {"num_hidden_layers", 2},
      {"num_attention_heads", 4},
      {"num_key_value_heads", 2},
      {"head_dim", 16},
      {"vocab_size", 80},
      {"max_position_embeddings", 256},
      {"rms_norm_eps", 1e-6},
      {"rope_theta", 1000000.0},
      {"rope_scaling", nullptr},
      {"tie_word_embeddings", false},
      {"torch_dtype", "bfloat16"},
      {"use_sliding_window", false},
      {"sliding_window", nullptr},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"dms_window_size", 4},
  };
}

// Deterministic test bytes of tensor `t` at byte `i`.
inline uint8_t PatternByte(size_t t, uint64_t i) {
  return static_cast<uint8_t>(rng::Bits(0x5eed + t, i) & 0xff);
}

inline TensorFillFn PatternFill() {
  return [](size_t t, uint64_t off, size_t n, uint8_t* out) {
    for (size_t i = 0; i < n; ++i) out[i] = PatternByte(t, off + i);
  };
}

// The tensors `config` implies, as bf16 specs.
inline std::vector<TensorSpec> SpecsFor(const nlohmann::json& config) {
  auto parsed = ParseModelConfig(config.dump(), "config.json");
  if (!parsed.ok()) throw std::runtime_error(parsed.status().message());
  std::vector<TensorSpec> specs;
  for (const TensorSlot& s : ExpectedTensors(*parsed))
    specs.push_back({s.name, DType::kBF16, s.shape});
  return specs;
}

// Writes DIR/config.json and its tensors (after `edit`, if given, changed the
// list). Returns the specs written (in writer order).
inline std::vector<TensorSpec> WriteTestCheckpoint(
    const std::string& dir, const nlohmann::json& config,
    const std::function<void(std::vector<TensorSpec>&)>& edit = {},
    uint64_t max_shard_bytes = uint64_t{1} << 40) {
  std::filesystem::create_directories(dir);
  WriteFile(dir + "/config.json", config.dump(2));
  std::vector<TensorSpec> specs = SpecsFor(config);
  if (edit) edit(specs);
  SafetensorsWriteOptions opt;
  opt.max_shard_bytes = max_shard_bytes;
  auto written = WriteSafetensorsCheckpoint(dir, specs, PatternFill(), opt);
  if (!written.ok()) throw std::runtime_error(written.status().message());
  return specs;
}

// A raw safetensors image: 8-byte little-endian length, `header`, `data_bytes` zero bytes.
inline std::string RawSafetensors(const std::string& header, size_t data_bytes,
                                  uint64_t declared_len = UINT64_MAX) {
  uint64_t n = declared_len == UINT64_MAX ? header.size() : declared_len;
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + std::string(data_bytes, '\0');
}

// Finds a spec by name (throws when absent: a test bug).
inline TensorSpec& SpecNamed(std::vector<TensorSpec>& specs, const std::string& name) {
  for (auto& s : specs) {
    if (s.name == name) return s;
  }
  throw std::runtime_error("no spec " + name);
}

inline void RemoveSpec(std::vector<TensorSpec>& specs, const std::string& name) {
  std::erase_if(specs, [&](const TensorSpec& s) { return s.name == name; });
}

}  // namespace dms::testing
