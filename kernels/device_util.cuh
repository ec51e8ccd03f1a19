// Device-side helpers shared by the kernels: conversions, warp/block
// reductions, the split of an fp32 value into bf16 hi + lo.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/kernel_types.h"

namespace dms::cuda {

__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Writes v as GEMM input: hi = bf16(v), lo = bf16(v - hi) when lo is wanted.
__device__ __forceinline__ void StoreGemmInput(const GemmInput& out, int64_t i, float v) {
  const __nv_bfloat16 hi = __float2bfloat16_rn(v);
  out.hi[i] = hi;
  if (out.lo) out.lo[i] = __float2bfloat16_rn(v - __bfloat162float(hi));
}

// Two floats as bf16x2 bits: `lo` in the low half (the lower index).
__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&v);
}

// StoreGemmInput for elements [i, i + 4) (i % 4 == 0, hi/lo 8-byte
// aligned): one 8-byte store of hi, and of lo when wanted.
__device__ __forceinline__ void StoreGemmInput4(const GemmInput& out, int64_t i, const float (&y)[4]) {
  const uint2 hi = make_uint2(PackBf16(y[0], y[1]), PackBf16(y[2], y[3]));
  *reinterpret_cast<uint2*>(out.hi + i) = hi;
  if (out.lo) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&hi);
    *reinterpret_cast<uint2*>(out.lo + i) =
        make_uint2(PackBf16(y[0] - __low2float(h[0]), y[1] - __high2float(h[0])),
                   PackBf16(y[2] - __low2float(h[1]), y[3] - __high2float(h[1])));
  }
}

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every
// thread gets the result. `scratch` holds 32 floats of shared memory.
__device__ __forceinline__ float BlockSum(float v, float* scratch) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  v = WarpSum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  const int nw = blockDim.x >> 5;
  v = lane < nw ? scratch[lane] : 0.0f;
  return WarpSum(v);
}

}  // namespace dms::cuda
