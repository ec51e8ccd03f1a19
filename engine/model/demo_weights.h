// Random Qwen3-DMS weights for demo checkpoints (`dms-engine make-model`),
// scaled so activations stay O(1) and arranged so DMS decisions evict about a
// chosen fraction of tokens. docs/checkpoints.md explains the arrangement:
//
//  * Channel c = D-1 of every embedding row holds the same constant m, and K
//    "token channels" D-1-K..D-2 hold ordinary random embedding values r_v.
//    No layer writes these K+1 channels (their rows of o_proj and down_proj
//    are zero), so every layer input x still carries m and r_v unchanged.
//  * The DMS logit of KV head h in layer l reads only those channels:
//    (neuron variant) the q_proj row of element hd-1 of query head h*g, or
//    (projection variant) row h of dms_proj_alpha, is gamma*(beta e_c + a.e_r)
//    with a random unit vector a per (l, h). Through RMSNorm the logit is
//    positive iff beta*m + a.r_v > ~(offset/scale) * rms(x) / gamma: a
//    function of the token alone, whose distribution over the vocabulary is
//    known, so beta is set at the (1-R) quantile and a fraction R of the
//    vocabulary evicts.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/model/model_config.h"
#include "engine/model/safetensors_writer.h"
#include "engine/model/tensor_layout.h"
#include "common/status.h"

namespace dms {

class DemoWeights {
 public:
  // `evict_rate` in [0, 1]. Needs hidden_size >= 16 (for the reserved channels).
  static StatusOr<DemoWeights> Create(const ModelConfig& config, uint64_t seed, double evict_rate);

  // All tensors, bf16, in Hugging Face state_dict order.
  const std::vector<TensorSpec>& specs() const { return specs_; }
  // A TensorFillFn: thread-safe, pure.
  void Fill(size_t tensor, uint64_t byte_offset, size_t nbytes, uint8_t* out) const;

  int const_channel() const { return config_.hidden_size - 1; }
  int num_token_channels() const { return num_token_channels_; }
  int token_channel(int k) const { return config_.hidden_size - 1 - num_token_channels_ + k; }
  float const_value() const { return const_value_; }  // m (before bf16 rounding)

 private:
  struct Tensor {
    TensorSlot slot;
    uint64_t key = 0;   // PRNG stream
    float stddev = 0;   // N(0, stddev^2) entries; 0 with ones = true for norms
    bool ones = false;
  };
  DemoWeights() = default;
  // Rows of the DMS logit for (layer, kv head): entries at the reserved channels.
  void DecisionRow(int layer, int head, std::vector<std::pair<int64_t, float>>* row) const;
  void PatchChunk(const Tensor& t, int64_t e0, int64_t e1, uint16_t* out) const;

  ModelConfig config_;
  uint64_t seed_ = 0;
  int num_token_channels_ = 0;
  float const_value_ = 0;
  std::vector<Tensor> tensors_;
  std::vector<TensorSpec> specs_;
  std::vector<float> beta_;   // [L * Hkv]: gamma * beta (already scaled)
  std::vector<float> alpha_;  // [L * Hkv * K]: gamma * a
};

}  // namespace dms
