// The QKV epilogue: everything between the fused QKV GEMM and attention, per
// token: biases, q/k RMSNorm over head_dim, the DMS decision of either
// variant (from fp32 values), zeroing of the single-neuron decision element,
// RoPE, and the write of q (f32) and k/v (cache dtype) into the workspace.
// Also the projection variant's decision logits (dms_proj_alpha).
#pragma once

#include <cstdint>

#include "kernels/kernel_types.h"

namespace dms::cuda {

enum class DecisionMode : int {
  kNone = 0,        // plain Qwen3: no decisions, no zeroing
  kNeuron = 1,      // q[h*g][hd-1] after q_norm is the logit; zeroed before and after RoPE
  kProjection = 2,  // logits from LaunchDmsAlphaLogits
};

struct QkvEpilogueParams {
  const float* qkv = nullptr;      // [N, (Hq + 2 Hkv) * hd] GEMM output (no bias)
  const float* q_bias = nullptr;   // [Hq * hd] or null
  const float* k_bias = nullptr;   // [Hkv * hd] or null
  const float* v_bias = nullptr;   // [Hkv * hd] or null
  const float* q_norm = nullptr;   // [hd]
  const float* k_norm = nullptr;   // [hd]
  const float* rope_cos = nullptr; // [max_pos, hd / 2]
  const float* rope_sin = nullptr; // [max_pos, hd / 2]
  const int32_t* positions = nullptr;   // [N]
  const float* alpha_logits = nullptr;  // [N, Hkv] projection variant: raw projection output
  int num_tokens = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  float eps = 1e-6f;
  DecisionMode mode = DecisionMode::kNone;
  bool per_layer = false;          // dms_alpha_per "layer": head 0 decides for all
  bool decisions_off = false;      // dms_disable_eviction or a dense cache: all 0
  float alpha_scale = 100.0f;
  float alpha_offset = 5.0f;
  float* q_out = nullptr;          // [N, Hq, hd] f32, RoPE applied
  // With this set, q goes here instead, rounded to bf16 (nearest even), the
  // rounding the tensor-core attention applies to it anyway: half the bytes
  // for a prefill whose attention runs on the tensor cores alone.
  __nv_bfloat16* q_out_bf16 = nullptr;  // [N, Hq, hd]
  void* k_out = nullptr;           // [N, Hkv, hd] kv_dtype, RoPE applied
  void* v_out = nullptr;           // [N, Hkv, hd] kv_dtype
  KvDType kv_dtype = KvDType::kBF16;
  uint8_t* decisions = nullptr;    // [N, Hkv] 1 = evict the predecessor
  float* decision_logits = nullptr;  // [N, Hkv] optional: the logit each decision came from
};

// head_dim must be even and at most 256.
cudaError_t LaunchQkvEpilogue(const QkvEpilogueParams& p, cudaStream_t stream);

// Projection-variant logits: out[r, h] = dot(RMSNorm(x[r]) * norm_w, w[h]),
// x: [rows, dim] f32 (the layer input), norm_w: [dim] f32, w: [Hkv, dim] bf16.
cudaError_t LaunchDmsAlphaLogits(const float* x, int rows, int dim, const float* norm_w,
                                 const __nv_bfloat16* w, int num_kv_heads, float eps, float* out,
                                 cudaStream_t stream);

}  // namespace dms::cuda
