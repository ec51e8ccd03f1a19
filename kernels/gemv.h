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

cudaError_t LaunchGemv(const GemmInput& x, int m, int k, const __nv_bfloat16* w, int n, float* y,
                       cudaStream_t stream);

// The MLP's gate;up product fused with SwiGLU:
//   out[r, i] = silu(g) * u,  g = x[r] · w[i],  u = x[r] · w[inter + i]
// w: [2 inter, k] (gate_proj; up_proj), out: [m, inter] as GEMM input. The
// same arithmetic as LaunchGemv then LaunchSwiGlu. out must not overlap x.
cudaError_t LaunchGemvSwiGlu(const GemmInput& x, int m, int k, const __nv_bfloat16* w, int inter,
                             GemmInput out, cudaStream_t stream);

}  // namespace dms::cuda
