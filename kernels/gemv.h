// y = x · wᵀ for the few rows of a decode step, where a GEMM is a stream
// over the weights: bf16 weights and activations (hi [+ lo]), fp32
// accumulation and output (the same contract as CublasLinear).
//   x: [m, k] bf16 (GemmInput; with lo, x = hi + lo in fp32)
//   w: [n, k] bf16 row-major
//   y: [m, n] f32 row-major, overwritten
#pragma once

#include <cstdint>

#include "kernels/kernel_types.h"

namespace dms::cuda {

inline constexpr int kGemvMaxRows = 4;

// Whether the GEMV kernels take this shape: 1 <= m <= kGemvMaxRows, k a
// multiple of 8 and w, x.hi, x.lo 16-byte aligned.
bool GemvSupported(const GemmInput& x, int m, int k, const __nv_bfloat16* w);

// Decode: the residual add and the RMSNorm between two matmuls folded into
// the GEMVs on either side, so a step has no norm kernels between layers.
// RMSNorm(h) * g = inv * (h * g) with one inv = 1 / sqrt(mean(h^2) + eps)
// per row, so
//  * the GEMV producing the residual's update (o_proj, down_proj) adds it,
//    h = residual + x · wᵀ (+ bias), writes h back to the residual, h * g as
//    the next GEMM input, and one partial sum of h^2 per block of
//    kGemvColumnsPerPartial columns (LaunchGemvResidualNorm);
//  * the GEMV consuming that input (q;k;v, gate;up) sums the partials in a
//    fixed order and multiplies its dot products by inv (RmsNormScale).
// The GEMM input is rounded to bf16 before the scale rather than after it:
// within a bf16 rounding of RMSNorm then GEMV, not the same bits. Each row's
// arithmetic is independent of m.
inline constexpr int kGemvColumnsPerPartial = 4;

struct RmsNormFold {
  float* residual = nullptr;      // [m, n] f32, updated in place
  const float* bias = nullptr;    // [n] added after the product, or null
  const float* weight = nullptr;  // [n] the norm's weight g
  GemmInput normed;               // [m, n] out: h * g; must not overlap x
  float* partials = nullptr;      // [m, n / kGemvColumnsPerPartial] out
};

// The consumer needs k % 16 == 0 and 16-byte aligned partials.
struct RmsNormScale {
  const float* partials = nullptr;  // [m, k / kGemvColumnsPerPartial] a fold's partials
  float eps = 0.0f;
};

// y = x · wᵀ; with `scale`, y = inv * (x · wᵀ), the mean over k columns.
cudaError_t LaunchGemv(const GemmInput& x, int m, int k, const __nv_bfloat16* w, int n, float* y,
                       cudaStream_t stream, const RmsNormScale* scale = nullptr);

// The producer side of the fold above (n % kGemvColumnsPerPartial == 0).
cudaError_t LaunchGemvResidualNorm(const GemmInput& x, int m, int k, const __nv_bfloat16* w, int n,
                                   const RmsNormFold& fold, cudaStream_t stream);

// The MLP's gate;up product fused with SwiGLU:
//   out[r, i] = silu(g) * u,  g = x[r] · w[i],  u = x[r] · w[inter + i]
// w: [2 inter, k] (gate_proj; up_proj), out: [m, inter] as GEMM input. The
// same arithmetic as LaunchGemv then LaunchSwiGlu. out must not overlap x.
// With `scale`, g and u are scaled by the norm's inv first.
cudaError_t LaunchGemvSwiGlu(const GemmInput& x, int m, int k, const __nv_bfloat16* w, int inter,
                             GemmInput out, cudaStream_t stream,
                             const RmsNormScale* scale = nullptr);

}  // namespace dms::cuda
