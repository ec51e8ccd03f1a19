// The model's weights in device memory, uploaded once: matrices in bf16
// (q/k/v and gate/up fused row-wise so one GEMM computes each pair), the small
// vectors (norms, biases) in f32, and the RoPE cos/sin table. One allocation.
#pragma once

#include <cuda_bf16.h>

#include <vector>

#include "engine/cuda/device_memory.h"
#include "engine/model/checkpoint.h"
#include "common/status.h"

namespace dms {

struct CudaLayerWeights {
  const float* input_norm = nullptr;      // [D]
  const float* post_norm = nullptr;       // [D]
  const float* q_norm = nullptr;          // [hd]
  const float* k_norm = nullptr;          // [hd]
  const __nv_bfloat16* qkv = nullptr;     // [(Hq + 2 Hkv) * hd, D]: q_proj; k_proj; v_proj
  const float* qkv_bias = nullptr;        // [(Hq + 2 Hkv) * hd] or null
  const __nv_bfloat16* o = nullptr;       // [D, Hq * hd]
  const float* o_bias = nullptr;          // [D] or null
  const __nv_bfloat16* gate_up = nullptr; // [2 I, D]: gate_proj; up_proj
  const __nv_bfloat16* down = nullptr;    // [D, I]
  const float* alpha_norm = nullptr;      // [D] projection variant only
  const __nv_bfloat16* alpha = nullptr;   // [Hkv, D] projection variant only
};

class CudaWeights {
 public:
  // `max_positions`: rows of the RoPE table (positions 0 .. max_positions-1).
  // Weights stored as f16/f32 are rounded to bf16.
  Status Upload(const Checkpoint& checkpoint, int max_positions);

  const __nv_bfloat16* embed() const { return embed_; }    // [vocab, D]
  const __nv_bfloat16* lm_head() const { return lm_head_; }  // [vocab, D] (embed when tied)
  const float* final_norm() const { return final_norm_; }  // [D]
  const float* rope_cos() const { return rope_cos_; }      // [max_positions, hd / 2]
  const float* rope_sin() const { return rope_sin_; }
  const CudaLayerWeights& layer(int l) const { return layers_[l]; }
  size_t bytes() const { return arena_.planned(); }

 private:
  Arena arena_;
  const __nv_bfloat16* embed_ = nullptr;
  const __nv_bfloat16* lm_head_ = nullptr;
  const float* final_norm_ = nullptr;
  const float* rope_cos_ = nullptr;
  const float* rope_sin_ = nullptr;
  std::vector<CudaLayerWeights> layers_;
};

}  // namespace dms
