#include "kernels/kv_append.h"

#include <cub/block/block_scan.cuh>

#include "kernels/device_util.cuh"
#include "kernels/launch.cuh"

namespace dms::cuda {
namespace {

constexpr int kPlanThreads = 1024;  // fewer leave its loops latency-bound (docs/kernel-history.md)

__global__ void PageTableScatterKernel(int32_t* page_table, const int32_t* updates, int count) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < count) page_table[updates[2 * i]] = updates[2 * i + 1];
}

// The marks and the reuse rule of one (chunk, head), read-only over the
// state before the chunk.
struct HeadPlan {
  const uint8_t* dec;    // decisions of the chunk's rows, stride hkv, this head
  const uint8_t* ring_evict;
  int hkv, t0, ring;
  // d[p+1] for a position p in [t0 - ring, t0 + n - 2].
  __device__ bool Mark(int pos) const {
    return pos >= t0 - 1 ? dec[static_cast<int64_t>(pos + 1 - t0) * hkv] != 0
                         : ring_evict[pos % ring] != 0;
  }
  // Chunk token jj reuses the slot of position t - ring.
  __device__ bool Reuse(int jj) const {
    const int t = t0 + jj;
    return t >= ring && Mark(t - ring);
  }
};

// grid: (chunks, Hkv), block: kPlanThreads.
__global__ void __launch_bounds__(kPlanThreads) KvAppendPlanKernel(KvAppendParams p) {
  using Scan = cub::BlockScan<int, kPlanThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ int carry_s;
  PdlEnter();
  const StepChunk c = p.chunks[blockIdx.x];
  const int h = blockIdx.y;
  const KvDeviceView& kv = p.kv;
  const int hkv = kv.num_kv_heads;
  const int64_t head = (static_cast<int64_t>(c.seq) * kv.num_layers + p.layer) * hkv + h;
  const int len0 = kv.head_len[head];
  const int n = c.n, t0 = c.start_pos;
  int32_t* slot = p.slot_scratch + static_cast<int64_t>(c.row_base) * hkv + h;  // stride hkv
  int32_t* write = p.write_slot + static_cast<int64_t>(c.row_base) * hkv + h;

  if (kv.window < 0) {  // dense: append in order
    for (int jj = threadIdx.x; jj < n; jj += blockDim.x) {
      slot[static_cast<int64_t>(jj) * hkv] = len0 + jj;
      write[static_cast<int64_t>(jj) * hkv] = len0 + jj;
    }
    __syncthreads();  // every thread has read len0
    if (threadIdx.x == 0) kv.head_len[head] = len0 + n;
    return;
  }

  const int ring = kv.window + 1;
  HeadPlan plan{p.decisions + static_cast<int64_t>(c.row_base) * hkv + h,
                kv.ring_evict + head * ring, hkv, t0, ring};
  int32_t* ring_slot = kv.ring_slot + head * ring;
  uint8_t* ring_evict = kv.ring_evict + head * ring;

  // 1. New slots, numbered by an exclusive prefix sum over "not reused".
  if (threadIdx.x == 0) carry_s = 0;
  __syncthreads();
  for (int base = 0; base < n; base += kPlanThreads) {
    const int jj = base + threadIdx.x;
    const int is_new = jj < n && !plan.Reuse(jj) ? 1 : 0;
    int prefix, total;
    Scan(scan_storage).ExclusiveSum(is_new, prefix, total);
    const int carry = carry_s;
    if (is_new) slot[static_cast<int64_t>(jj) * hkv] = len0 + carry + prefix;
    __syncthreads();  // carry_s read, scan storage free
    if (threadIdx.x == 0) carry_s = carry + total;
    __syncthreads();
  }
  const int total_new = carry_s;

  // 2. Reused slots: walk back a ring at a time to a new token or to the
  //    state before the chunk. Reads only slots of new tokens (set above).
  for (int jj = threadIdx.x; jj < n; jj += blockDim.x) {
    if (!plan.Reuse(jj)) continue;
    int k = jj, s;
    while (true) {
      k -= ring;
      if (k < 0) {
        s = ring_slot[(t0 + k) % ring];
        break;
      }
      if (!plan.Reuse(k)) {
        s = slot[static_cast<int64_t>(k) * hkv];
        break;
      }
    }
    slot[static_cast<int64_t>(jj) * hkv] = s;
  }
  __syncthreads();

  // 3. Write list: a token whose slot token jj + ring takes over is skipped.
  for (int jj = threadIdx.x; jj < n; jj += blockDim.x) {
    const bool superseded = jj + ring < n && plan.Reuse(jj + ring);
    write[static_cast<int64_t>(jj) * hkv] = superseded ? -1 : slot[static_cast<int64_t>(jj) * hkv];
  }
  __syncthreads();  // all reads of the old ring are done

  // 4. The ring after the chunk: positions [t0 + n - ring, t0 + n - 1].
  const int first = max(t0, t0 + n - ring);
  for (int pos = first + threadIdx.x; pos < t0 + n; pos += blockDim.x) {
    const int jj = pos - t0;
    ring_slot[pos % ring] = slot[static_cast<int64_t>(jj) * hkv];
    ring_evict[pos % ring] = jj + 1 < n ? plan.dec[static_cast<int64_t>(jj + 1) * hkv] : 0;
  }
  if (threadIdx.x == 0) {
    // The newest cached token's mark, set by the chunk's first decision, if
    // that position is still in the ring.
    if (t0 > 0 && n < ring) ring_evict[(t0 - 1) % ring] = plan.dec[0];
    kv.head_len[head] = len0 + total_new;
  }
}

// Copies row r's K/V of every head into its slot (slot_of(h) < 0: not
// written) and records the row's position: all heads at once in 16-byte
// pieces (decode has one row: a head-by-head loop was a chain of dependent
// loads per head).
template <typename T, typename SlotOf>
__device__ __forceinline__ void StoreRow(const KvAppendParams& p, int32_t seq, int64_t r, int pos,
                                         SlotOf slot_of) {
  const KvDeviceView& kv = p.kv;
  const int hkv = kv.num_kv_heads, hd = kv.head_dim, bs = kv.block_size;
  constexpr int kVec = 16 / sizeof(T);
  const int pieces = hd / kVec;  // head_dim * sizeof(T) is a multiple of 16
  const uint4* k_new = static_cast<const uint4*>(p.k_new);
  const uint4* v_new = static_cast<const uint4*>(p.v_new);
  uint4* pool = static_cast<uint4*>(kv.pool);
  for (int i = threadIdx.x; i < hkv * pieces; i += blockDim.x) {
    const int h = i / pieces, d = i % pieces;
    const int s = slot_of(h);
    if (s < 0) continue;
    const int64_t head = (static_cast<int64_t>(seq) * kv.num_layers + p.layer) * hkv + h;
    const int64_t block = kv.page_table[head * kv.max_blocks_per_head + s / bs];
    const int off = s % bs;
    uint4* kd = pool + (block * 2 * bs + off) * pieces;
    uint4* vd = kd + static_cast<int64_t>(bs) * pieces;
    kd[d] = k_new[(r * hkv + h) * pieces + d];
    vd[d] = v_new[(r * hkv + h) * pieces + d];
    if (d == 0) kv.pool_pos[block * bs + off] = pos;
  }
}

// One block per row: K/V into the slots the plan kernel chose.
template <typename T>
__global__ void KvStoreKernel(KvAppendParams p) {
  PdlEnter();
  const int64_t r = blockIdx.x;
  const int hkv = p.kv.num_kv_heads;
  const StepChunk c = p.chunks[p.row_chunk[r]];
  const int pos = c.start_pos + static_cast<int>(r - c.row_base);
  StoreRow<T>(p, c.seq, r, pos, [&](int h) { return p.write_slot[r * hkv + h]; });
}

// Decode steps (every chunk is one token): a head's plan is one slot, so one
// kernel plans and stores (one launch a layer instead of the plan kernel
// above and KvStoreKernel). The plan below is KvAppendPlanKernel's steps 1-4
// for n = 1, in the same order on one thread per head.
// grid: chunks, block: 128, shared: hkv ints.
template <typename T>
__global__ void KvAppendDecodeKernel(KvAppendParams p) {
  extern __shared__ int32_t slot_s[];  // [hkv]
  // Works before PdlWait, beside the kernel before it (kv_append.h says
  // where it may be enqueued), and waits at the end, so that the kernels
  // after it still see that one complete.
  PdlLaunchDependents();
  const StepChunk c = p.chunks[blockIdx.x];
  const KvDeviceView& kv = p.kv;
  const int hkv = kv.num_kv_heads;
  const int64_t r = c.row_base;
  const int t0 = c.start_pos;
  for (int h = threadIdx.x; h < hkv; h += blockDim.x) {
    const int64_t head = (static_cast<int64_t>(c.seq) * kv.num_layers + p.layer) * hkv + h;
    const int len0 = kv.head_len[head];
    int s = len0;
    bool reuse = false;
    if (kv.window >= 0) {
      const int ring = kv.window + 1;
      const HeadPlan plan{p.decisions + r * hkv + h, kv.ring_evict + head * ring, hkv, t0, ring};
      int32_t* ring_slot = kv.ring_slot + head * ring;
      uint8_t* ring_evict = kv.ring_evict + head * ring;
      reuse = plan.Reuse(0);
      if (reuse) s = ring_slot[t0 % ring];  // the slot of position t0 - ring
      ring_slot[t0 % ring] = s;
      ring_evict[t0 % ring] = 0;
      if (t0 > 0 && ring > 1) ring_evict[(t0 - 1) % ring] = plan.dec[0];
    }
    kv.head_len[head] = len0 + (reuse ? 0 : 1);
    p.write_slot[r * hkv + h] = s;
    slot_s[h] = s;
  }
  __syncthreads();
  StoreRow<T>(p, c.seq, r, t0, [&](int h) { return slot_s[h]; });
  PdlWait();
}

}  // namespace

cudaError_t LaunchPageTableScatter(int32_t* page_table, const int32_t* updates, int count,
                                   cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  PageTableScatterKernel<<<(count + 255) / 256, 256, 0, stream>>>(page_table, updates, count);
  return cudaGetLastError();
}

cudaError_t LaunchKvAppend(const KvAppendParams& p, cudaStream_t stream) {
  if (p.num_chunks <= 0 || p.num_tokens <= 0) return cudaSuccess;
  if (p.kv.head_dim * KvDTypeSize(p.kv.dtype) % 16 != 0) return cudaErrorInvalidValue;
  if (p.num_tokens == p.num_chunks) {  // chunks are never empty: each is one token
    const size_t shared = sizeof(int32_t) * p.kv.num_kv_heads;
    if (p.kv.dtype == KvDType::kBF16) {
      return LaunchKernel(LaunchGroup::kAppend, KvAppendDecodeKernel<__nv_bfloat16>, p.num_chunks,
                          128, shared, stream, p);
    }
    return LaunchKernel(LaunchGroup::kAppend, KvAppendDecodeKernel<float>, p.num_chunks, 128,
                        shared, stream, p);
  }
  const dim3 grid(p.num_chunks, p.kv.num_kv_heads);
  const cudaError_t err =
      LaunchKernel(LaunchGroup::kAppend, KvAppendPlanKernel, grid, kPlanThreads, 0, stream, p);
  if (err != cudaSuccess) return err;
  if (p.kv.dtype == KvDType::kBF16) {
    return LaunchKernel(LaunchGroup::kAppend, KvStoreKernel<__nv_bfloat16>, p.num_tokens, 128, 0,
                        stream, p);
  }
  return LaunchKernel(LaunchGroup::kAppend, KvStoreKernel<float>, p.num_tokens, 128, 0, stream, p);
}

}  // namespace dms::cuda
