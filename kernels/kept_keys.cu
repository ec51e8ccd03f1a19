// The unmarked keys of each chunk per KV head (attention.h,
// LaunchDmsKeptKeys): a stream compaction over the chunk's marks.
//
// Why: a DMS prefill tile of queries [qa, qb] sees a chunk key j < qa - W
// only if j is unmarked (every query is more than W past it). At 87.5%
// eviction those are an eighth of the old keys, so the tensor-core kernel
// reads them from this list instead of walking (and masking) all of them.
//
// One block per (chunk, head) scans the chunk 1024 keys at a time: a ballot
// gives each thread its rank in its warp, warp totals are scanned by warp 0,
// and a running carry joins the segments. Deterministic, no atomics.
#include "kernels/attention.h"
#include "kernels/device_util.cuh"

namespace dms::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;

__global__ void __launch_bounds__(kThreads) KeptKeysKernel(const StepChunk* chunks,
                                                           int num_kv_heads,
                                                           const uint8_t* decisions,
                                                           int32_t* kept_index,
                                                           int32_t* kept_count) {
  __shared__ int warp_total[kWarps];
  __shared__ int carry_smem;
  const StepChunk c = chunks[blockIdx.x];
  const int h = blockIdx.y, hkv = num_kv_heads;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (threadIdx.x == 0) carry_smem = 0;
  __syncthreads();
  for (int base = 0; base < c.n; base += kThreads) {
    const int jj = base + threadIdx.x;
    const int64_t r = static_cast<int64_t>(c.row_base) + jj;
    const bool kept = jj < c.n && (jj + 1 >= c.n || decisions[(r + 1) * hkv + h] == 0);
    const unsigned ballot = __ballot_sync(0xffffffffu, kept);
    const int rank = __popc(ballot & ((1u << lane) - 1u));  // kept keys before this one in the warp
    if (lane == 0) warp_total[warp] = __popc(ballot);
    const int carry = carry_smem;
    __syncthreads();
    if (warp == 0) {
      const int own = warp_total[lane];
      int incl = own;
#pragma unroll
      for (int d = 1; d < 32; d <<= 1) {
        const int up = __shfl_up_sync(0xffffffffu, incl, d);
        if (lane >= d) incl += up;
      }
      warp_total[lane] = incl - own;  // exclusive prefix of the warp totals
      if (lane == 31) carry_smem = carry + incl;
    }
    __syncthreads();
    if (jj < c.n) {
      const int before = carry + warp_total[warp] + rank;  // kept keys among [0, jj)
      kept_count[r * hkv + h] = before + (kept ? 1 : 0);
      if (kept) kept_index[(static_cast<int64_t>(c.row_base) + before) * hkv + h] = jj;
    }
    __syncthreads();  // warp_total is rewritten by the next segment
  }
}

}  // namespace

cudaError_t LaunchDmsKeptKeys(const StepChunk* chunks, int num_chunks, int num_kv_heads,
                              const uint8_t* decisions, int32_t* kept_index, int32_t* kept_count,
                              cudaStream_t stream) {
  if (num_chunks <= 0) return cudaSuccess;
  if (num_kv_heads <= 0 || !chunks || !decisions || !kept_index || !kept_count) {
    return cudaErrorInvalidValue;
  }
  KeptKeysKernel<<<dim3(num_chunks, num_kv_heads), kThreads, 0, stream>>>(
      chunks, num_kv_heads, decisions, kept_index, kept_count);
  return cudaGetLastError();
}

}  // namespace dms::cuda
