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

// Whether LaunchGemv takes this shape: 1 <= m <= kGemvMaxRows, k a multiple
// of 8 and w, x.hi, x.lo 16-byte aligned.
bool GemvSupported(const GemmInput& x, int m, int k, const __nv_bfloat16* w);

cudaError_t LaunchGemv(const GemmInput& x, int m, int k, const __nv_bfloat16* w, int n, float* y,
                       cudaStream_t stream);

}  // namespace dms::cuda
