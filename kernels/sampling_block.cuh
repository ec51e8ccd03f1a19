// Block-wide primitives of the row sampler (kernels/sampling_rows.cu), for
// blocks of exactly kSampleThreads threads: reductions, scans and a bitonic
// sort in shared memory. Every function is called by all threads of the block
// (they contain __syncthreads) and gives every thread the same result. All
// are deterministic: fixed combination order, no floating-point atomics.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace dms::cuda::sampling {

constexpr int kSampleThreads = 1024;
constexpr int kSampleWarps = kSampleThreads / 32;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ int LaneId() { return threadIdx.x & 31; }
__device__ __forceinline__ int WarpId() { return threadIdx.x >> 5; }

__device__ __forceinline__ uint64_t WarpMinU64(uint64_t v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const uint64_t other = __shfl_xor_sync(kFullMask, v, o);
    v = other < v ? other : v;
  }
  return v;
}

__device__ __forceinline__ uint64_t WarpSumU64(uint64_t v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// The block's minimum of v.
__device__ __forceinline__ uint64_t BlockMinU64(uint64_t v) {
  __shared__ uint64_t warp_min[kSampleWarps];
  v = WarpMinU64(v);
  __syncthreads();  // warp_min may still be read by a previous call
  if (LaneId() == 0) warp_min[WarpId()] = v;
  __syncthreads();
  return WarpMinU64(warp_min[LaneId()]);
}

// The block's sum of v (integer: exact, any order).
__device__ __forceinline__ uint64_t BlockSumU64(uint64_t v) {
  __shared__ uint64_t warp_sum[kSampleWarps];
  v = WarpSumU64(v);
  __syncthreads();
  if (LaneId() == 0) warp_sum[WarpId()] = v;
  __syncthreads();
  return WarpSumU64(warp_sum[LaneId()]);
}

__device__ __forceinline__ uint32_t BlockMinU32(uint32_t v) {
  __shared__ uint32_t warp_min[kSampleWarps];
  v = __reduce_min_sync(kFullMask, v);
  __syncthreads();
  if (LaneId() == 0) warp_min[WarpId()] = v;
  __syncthreads();
  return __reduce_min_sync(kFullMask, warp_min[LaneId()]);
}

__device__ __forceinline__ uint32_t BlockMaxU32(uint32_t v) {
  __shared__ uint32_t warp_max[kSampleWarps];
  v = __reduce_max_sync(kFullMask, v);
  __syncthreads();
  if (LaneId() == 0) warp_max[WarpId()] = v;
  __syncthreads();
  return __reduce_max_sync(kFullMask, warp_max[LaneId()]);
}

// Exclusive prefix sum of v over the threads in thread order; *total gets
// the block's sum. T: uint32_t or double (a fixed tree: deterministic).
template <typename T>
__device__ __forceinline__ T BlockExclusiveScan(T v, T* total) {
  __shared__ T warp_incl[kSampleWarps];
  const int lane = LaneId(), warp = WarpId();
  T incl = v;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const T t = __shfl_up_sync(kFullMask, incl, o);
    if (lane >= o) incl += t;
  }
  T excl = __shfl_up_sync(kFullMask, incl, 1);
  if (lane == 0) excl = T(0);
  __syncthreads();
  if (lane == 31) warp_incl[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    T w = warp_incl[lane];
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const T t = __shfl_up_sync(kFullMask, w, o);
      if (lane >= o) w += t;
    }
    warp_incl[lane] = w;
  }
  __syncthreads();
  *total = warp_incl[kSampleWarps - 1];
  return warp == 0 ? excl : warp_incl[warp - 1] + excl;
}

// Inclusive prefix sums of 2 items a thread (items 2t, 2t+1 of thread t).
template <typename T>
__device__ __forceinline__ void BlockInclusiveScan2(T a, T b, T* incl_a, T* incl_b, T* total) {
  const T before = BlockExclusiveScan<T>(a + b, total);
  *incl_a = before + a;
  *incl_b = *incl_a + b;
}

// Sorts keys[0, n) ascending in shared memory (bitonic; n <= 2 * threads).
// keys[n, pow2) are padded with ~0 and sorted too: keys must hold the next
// power of two >= n entries.
__device__ __forceinline__ void BlockSortU64(uint64_t* keys, int n) {
  int size = 1;
  while (size < n) size <<= 1;
  for (int i = n + threadIdx.x; i < size; i += kSampleThreads) keys[i] = ~0ull;
  __syncthreads();
  for (int k = 2; k <= size; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int i = threadIdx.x; i < size; i += kSampleThreads) {
        const int partner = i ^ j;
        if (partner > i) {
          const uint64_t a = keys[i], b = keys[partner];
          const bool ascending = (i & k) == 0;
          if ((a > b) == ascending) {
            keys[i] = b;
            keys[partner] = a;
          }
        }
      }
      __syncthreads();
    }
  }
}

}  // namespace dms::cuda::sampling
