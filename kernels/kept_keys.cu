// The unmarked keys of each chunk per KV head (attention.h,
// LaunchDmsKeptKeys): a stream compaction over the chunk's marks.
//
// Why: a DMS prefill tile of queries [qa, qb] sees a chunk key j < qa - W
// only if j is unmarked (every query is more than W past it). At 87.5%
// eviction those are an eighth of the old keys, so the tensor-core kernel
// reads them from this list instead of walking (and masking) all of them.
//
// LaunchDmsKeptKeys: one block per (chunk, head); each of its 32 warps owns
// a contiguous run of the chunk's keys. Pass 1 counts each run's unmarked
// keys (all loads independent), one block-wide scan gives each run its
// start, pass 2 ranks the keys 32 at a time by ballot with the carry in a
// register: two block barriers in all, where rounds of 1,024 keys would put
// three barriers and a load in each round's chain (docs/kernel-history.md).
// LaunchDmsCachedKeptKeys keeps the rounds (CompactRank: its lists are a
// window's worth of slots, one or two rounds).
// Deterministic (the cached-slot list's one atomic is a min).
#include "kernels/attention.h"
#include "kernels/device_util.cuh"

namespace dms::cuda {
namespace {

constexpr int kThreads = 1024;
constexpr int kWarps = kThreads / 32;

// Inclusive prefix sum of v over the warp's lanes.
__device__ __forceinline__ int WarpInclusiveScan(int v) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int d = 1; d < 32; d <<= 1) {
    const int up = __shfl_up_sync(0xffffffffu, v, d);
    if (lane >= d) v += up;
  }
  return v;
}

// One round of a block-wide stream compaction (every thread calls it): the
// number of flagged threads before this one, over this round and the earlier
// ones; *carry advances by the round's total. A ballot gives each thread its
// rank in its warp, warp 0 scans the warp totals.
__device__ __forceinline__ int CompactRank(bool flag, int* warp_total, int* carry) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const unsigned ballot = __ballot_sync(0xffffffffu, flag);
  const int rank = __popc(ballot & ((1u << lane) - 1u));  // flagged ones before this one in the warp
  if (lane == 0) warp_total[warp] = __popc(ballot);
  const int before_round = *carry;
  __syncthreads();
  if (warp == 0) {
    const int own = warp_total[lane];
    const int incl = WarpInclusiveScan(own);
    warp_total[lane] = incl - own;  // exclusive prefix of the warp totals
    if (lane == 31) *carry = before_round + incl;
  }
  __syncthreads();
  const int before = before_round + warp_total[warp] + rank;
  __syncthreads();  // warp_total is rewritten by the next round
  return before;
}

__global__ void __launch_bounds__(kThreads) KeptKeysKernel(const StepChunk* chunks,
                                                           int num_kv_heads,
                                                           const uint8_t* decisions,
                                                           int32_t* kept_index,
                                                           int32_t* kept_count) {
  __shared__ int warp_start[kWarps];
  const StepChunk c = chunks[blockIdx.x];
  const int h = blockIdx.y, hkv = num_kv_heads;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  // Warp w: chunk keys [w * run, (w + 1) * run), run a multiple of 32.
  const int run = (c.n + kThreads - 1) / kThreads * 32;
  const int begin = min(c.n, warp * run), end = min(c.n, begin + run);
  // Key jj is unmarked iff it is the chunk's last or the next token's mark is 0.
  const uint8_t* marks = decisions + (static_cast<int64_t>(c.row_base) + 1) * hkv + h;
  auto kept = [&](int jj) { return jj + 1 >= c.n || __ldg(marks + static_cast<int64_t>(jj) * hkv) == 0; };

  // Pass 1: this warp's unmarked keys.
  int own = 0;
#pragma unroll 8
  for (int jj = begin + lane; jj < end; jj += 32) own += kept(jj) ? 1 : 0;
#pragma unroll
  for (int d = 16; d > 0; d >>= 1) own += __shfl_xor_sync(0xffffffffu, own, d);
  if (lane == 0) warp_start[warp] = own;
  __syncthreads();
  if (warp == 0) {  // exclusive scan of the 32 warp totals
    const int total = warp_start[lane];
    warp_start[lane] = WarpInclusiveScan(total) - total;
  }
  __syncthreads();

  // Pass 2 (the marks again, from L1): ranks 32 keys a ballot.
  int before = warp_start[warp];  // unmarked keys among [0, this group's first)
  const uint32_t lower = (1u << lane) - 1u;
  for (int base = begin; base < end; base += 32) {
    const int jj = base + lane;
    const bool k = jj < end && kept(jj);
    const uint32_t ballot = __ballot_sync(0xffffffffu, k);
    const int rank = before + __popc(ballot & lower);
    if (jj < end) {
      const int64_t r = static_cast<int64_t>(c.row_base) + jj;
      kept_count[r * hkv + h] = rank + (k ? 1 : 0);
      if (k) kept_index[(static_cast<int64_t>(c.row_base) + rank) * hkv + h] = jj;
    }
    before += __popc(ballot);
  }
}

// LaunchDmsCachedKeptKeys (attention.h). Why: after a chunk of prefill the
// cache keeps its last W + 1 positions whole, marked ones included (the next
// chunk's first queries still see them): at 87.5% eviction about 450 slots a
// head, which every later tile of the next chunk would walk and mask (7
// key tiles of 64 at W = 512). Slots are reused as keys are evicted, so
// those slots need not be the last ones: the first slot holding one of
// those positions bounds the range to list.
__global__ void __launch_bounds__(kThreads) CachedKeptKeysKernel(const StepChunk* chunks,
                                                                 KvDeviceView kv, int layer,
                                                                 const uint8_t* decisions,
                                                                 int32_t* cache_kept_index,
                                                                 int32_t* cache_tail) {
  __shared__ int warp_total[kWarps];
  __shared__ int carry, tail_lo_smem;
  const StepChunk c = chunks[blockIdx.x];
  const int h = blockIdx.y, hkv = kv.num_kv_heads, window = kv.window;
  const int64_t head = (static_cast<int64_t>(c.seq) * kv.num_layers + layer) * hkv + h;
  const int len = kv.head_len[head];
  int32_t* out = cache_tail + (static_cast<int64_t>(blockIdx.x) * hkv + h) * 2;
  if (window < 0 || c.n <= window + 1) {
    if (threadIdx.x == 0) out[0] = len, out[1] = 0;
    return;
  }
  const int ring = window + 1, lo = c.start_pos - ring;
  const int32_t* table = kv.page_table + head * kv.max_blocks_per_head;
  // A slot's pool row (pool_pos's index): what the list holds, so that the
  // attention's walk reaches a listed key's position in one load.
  auto row_of = [&](int slot) {
    return table[slot / kv.block_size] * kv.block_size + slot % kv.block_size;
  };
  auto pos_of = [&](int slot) { return kv.pool_pos[row_of(slot)]; };
  if (threadIdx.x == 0) tail_lo_smem = len, carry = 0;
  __syncthreads();
  for (int slot = threadIdx.x; slot < len; slot += kThreads) {
    if (pos_of(slot) >= lo) atomicMin(&tail_lo_smem, slot);
  }
  __syncthreads();
  const int tail_lo = tail_lo_smem;
  if (len - tail_lo > c.n) {  // the list would not fit the chunk's rows: walk every slot
    if (threadIdx.x == 0) out[0] = len, out[1] = 0;
    return;
  }
  const uint8_t first_mark = decisions[static_cast<int64_t>(c.row_base) * hkv + h];
  for (int base = tail_lo; base < len; base += kThreads) {
    const int slot = base + threadIdx.x;
    bool keep = false;
    int32_t row = 0;
    if (slot < len) {
      row = row_of(slot);
      const int32_t pos = kv.pool_pos[row];
      const uint8_t mark = pos < lo ? 0
                           : pos == c.start_pos - 1 ? first_mark
                                                    : kv.ring_evict[head * ring + pos % ring];
      keep = mark == 0;
    }
    const int before = CompactRank(keep, warp_total, &carry);
    if (keep) cache_kept_index[(static_cast<int64_t>(c.row_base) + before) * hkv + h] = row;
  }
  if (threadIdx.x == 0) out[0] = tail_lo, out[1] = carry;
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

cudaError_t LaunchDmsCachedKeptKeys(const StepChunk* chunks, int num_chunks, const KvDeviceView& kv,
                                    int layer, const uint8_t* decisions, int32_t* cache_kept_index,
                                    int32_t* cache_tail, cudaStream_t stream) {
  if (num_chunks <= 0) return cudaSuccess;
  if (kv.num_kv_heads <= 0 || layer < 0 || layer >= kv.num_layers || !chunks || !decisions ||
      !cache_kept_index || !cache_tail || !kv.head_len || !kv.page_table || !kv.pool_pos) {
    return cudaErrorInvalidValue;
  }
  CachedKeptKeysKernel<<<dim3(num_chunks, kv.num_kv_heads), kThreads, 0, stream>>>(
      chunks, kv, layer, decisions, cache_kept_index, cache_tail);
  return cudaGetLastError();
}

}  // namespace dms::cuda
