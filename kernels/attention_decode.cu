// Decode attention over the compact cache at the HBM's rate (attention.h,
// LaunchDmsDecodeAttention). A block takes one decode token's g query heads
// (one KV group) and one split of its keys; it streams the keys' K and V
// rows, bf16 as the cache holds them, through a ring of kStages shared-memory
// tiles with cp.async, so the next tiles' loads are in flight while a tile is
// scored. Page-table entries are loaded one tile ahead of their use.
//
// Visibility needs no per-key metadata in decode: for the query at t0 every
// cached key is visible except, when marked, position t0 - W - 1 (the one key
// leaving the window; older cached keys are unmarked, newer ones are inside
// it). Its slot comes from the window ring, its mark from the ring or, for
// W = 0, from this step's decision. Key `len` is the token's own (k_new).
#include "kernels/attention.h"
#include "kernels/attention_merge.cuh"
#include "kernels/device_util.cuh"
#include "kernels/launch.cuh"

namespace dms::cuda {
namespace {

constexpr int kThreads = kAttnSimtWarps * 32;  // the split merge's block
constexpr int kWarps = kAttnSimtWarps;
constexpr int kKeys = 32;         // keys a tile
constexpr int kStages = 3;        // tiles in the ring: two in flight while one is scored
constexpr int kLanesPerKey = 8;   // scoring: 8 lanes a key, 4 keys a warp
constexpr int kG = kAttnDecodeMaxGroup;
static_assert(kWarps * 32 / kLanesPerKey == kKeys, "one scoring pass covers a tile");
static_assert(kG <= kWarps, "a warp a query row in the softmax");

__device__ __forceinline__ void CpAsync16(void* smem, const void* gmem, bool valid) {
  const unsigned dst = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int src_bytes = valid ? 16 : 0;  // 0: the 16 bytes are zero-filled
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(gmem),
               "r"(src_bytes)
               : "memory");
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

template <int HD>
struct DecodeSmem {
  __nv_bfloat16 k[kStages][kKeys][HD];
  __nv_bfloat16 v[kStages][kKeys][HD];
};

// grid: (tiles, Hkv, splits); block: kThreads; dynamic shared memory:
// DecodeSmem<HD>. Every tile must be one decode token (q_count 1).
template <int HD>
__global__ void __launch_bounds__(kThreads, kAttnDecodeBlocksPerSm)
    DmsDecodeAttentionKernel(AttentionParams p) {
  constexpr int kChunks = HD / 8;                           // 16-byte chunks a row
  constexpr int kChunksPerThread = kChunks / kLanesPerKey;  // of a key's K (and V) row
  constexpr int kDims = HD / kLanesPerKey;                  // a scoring lane's dims
  constexpr int kThreadsPerDim = kThreads / HD;             // P.V: threads sharing a dim
  constexpr int kRowsPerThread = (kG + kThreadsPerDim - 1) / kThreadsPerDim;
  static_assert(kChunksPerThread >= 1 && kDims % 8 == 0, "head_dim 64 or 128");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  DecodeSmem<HD>& sm = *reinterpret_cast<DecodeSmem<HD>*>(smem_raw);
  __shared__ __align__(16) float q_s[kG][HD];
  __shared__ float s_s[kG][kKeys];
  __shared__ __align__(16) float p_s[kKeys][kG];
  __shared__ float corr_s[kG], m_s[kG], l_s[kG];

  const AttnTile tile = p.tiles[blockIdx.x];
  const int h = blockIdx.y, split = blockIdx.z;
  const StepChunk c = p.chunks[tile.chunk];
  const KvDeviceView& kv = p.kv;
  const int hq = p.num_q_heads, hkv = kv.num_kv_heads, g = hq / hkv;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int64_t head = (static_cast<int64_t>(c.seq) * kv.num_layers + p.layer) * hkv + h;
  const int32_t* table = kv.page_table + head * kv.max_blocks_per_head;
  const __nv_bfloat16* pool = static_cast<const __nv_bfloat16*>(kv.pool);
  const int bs = kv.block_size;
  const int t0 = c.start_pos;

  PdlWait();  // q, the token's own K/V and its decision come from the epilogue
  const int len = kv.head_len[head];
  const int num_keys = len + 1;
  int span = (num_keys + p.num_splits - 1) / p.num_splits;
  span = (span + kKeys - 1) / kKeys * kKeys;
  const int k_lo = split * span;
  const int k_hi = min(num_keys, k_lo + span);
  const int num_tiles = k_hi > k_lo ? (k_hi - k_lo + kKeys - 1) / kKeys : 0;

  // The one cached slot the query may not see (-1: none).
  int masked_slot = -1;
  if (kv.window >= 0 && t0 - kv.window - 1 >= 0) {
    const int ring = kv.window + 1;
    const int at = head * ring + (t0 - kv.window - 1) % ring;
    const bool marked = kv.window == 0
                            ? p.decisions[static_cast<int64_t>(c.row_base) * hkv + h] != 0
                            : kv.ring_evict[at] != 0;
    if (marked) masked_slot = kv.ring_slot[at];
  }

  // Staging: thread tid copies chunks of key (tid / kLanesPerKey) of a tile.
  const int stage_key = tid / kLanesPerKey, stage_chunk = (tid % kLanesPerKey) * kChunksPerThread;
  const __nv_bfloat16* own_k = static_cast<const __nv_bfloat16*>(p.k_new) +
                               (static_cast<int64_t>(c.row_base) * hkv + h) * HD;
  const __nv_bfloat16* own_v = static_cast<const __nv_bfloat16*>(p.v_new) +
                               (static_cast<int64_t>(c.row_base) * hkv + h) * HD;
  auto page_of = [&](int t) -> int32_t {
    const int kk = k_lo + t * kKeys + stage_key;
    return t < num_tiles && kk < len ? __ldg(table + kk / bs) : -1;
  };
  auto issue = [&](int t, int32_t page) {
    if (t >= num_tiles) return;
    const int kk = k_lo + t * kKeys + stage_key;
    const int slot = t % kStages;
    const __nv_bfloat16* kr = pool;  // any valid address when nothing is read
    const __nv_bfloat16* vr = pool;
    bool valid = false;
    if (kk < k_hi) {
      valid = true;
      if (kk < len) {
        kr = pool + ((static_cast<int64_t>(page) * 2) * bs + kk % bs) * HD;
        vr = kr + static_cast<int64_t>(bs) * HD;
      } else {  // kk == len: the token's own key
        kr = own_k;
        vr = own_v;
      }
    }
#pragma unroll
    for (int i = 0; i < kChunksPerThread; ++i) {
      const int d0 = (stage_chunk + i) * 8;
      CpAsync16(&sm.k[slot][stage_key][d0], kr + d0, valid);
      CpAsync16(&sm.v[slot][stage_key][d0], vr + d0, valid);
    }
  };

  // Prologue: the first kStages - 1 tiles in flight, the next tile's pages loading.
#pragma unroll
  for (int t = 0; t < kStages - 1; ++t) {
    issue(t, page_of(t));
    CpAsyncCommit();
  }
  int32_t next_page = page_of(kStages - 1);

  for (int i = tid; i < g * HD; i += kThreads) {
    const int r = i / HD, d = i % HD;
    q_s[r][d] = p.q[(static_cast<int64_t>(c.row_base) * hq + h * g + r) * HD + d];
  }
  const float scale = 1.0f / sqrtf(static_cast<float>(HD));
  float m_run = -INFINITY, l_run = 0.0f;  // warp r < g: row r's running max and sum
  float acc[kRowsPerThread];
#pragma unroll
  for (int j = 0; j < kRowsPerThread; ++j) acc[j] = 0.0f;
  const int pv_d = tid % HD, pv_rg = tid / HD;

  for (int t = 0; t < num_tiles; ++t) {
    CpAsyncWait<kStages - 2>();
    __syncthreads();  // tile t landed for everyone; tile t - 1's slot is free
    issue(t + kStages - 1, next_page);
    CpAsyncCommit();
    next_page = page_of(t + kStages);
    const int slot = t % kStages;
    const int k0 = k_lo + t * kKeys;

    // Scores: warp w, keys 4w .. 4w+3, 8 lanes a key over kDims dims each.
    {
      const int key = warp * (32 / kLanesPerKey) + lane / kLanesPerKey;
      const int d0 = (lane % kLanesPerKey) * kDims;
      float kf[kDims];
#pragma unroll
      for (int i = 0; i < kDims; i += 8) {
        const uint4 raw = *reinterpret_cast<const uint4*>(&sm.k[slot][key][d0 + i]);
        const __nv_bfloat162* b2 = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float2 f = __bfloat1622float2(b2[e]);
          kf[i + 2 * e] = f.x;
          kf[i + 2 * e + 1] = f.y;
        }
      }
      const int kk = k0 + key;
      const bool visible = kk < k_hi && kk != masked_slot;
#pragma unroll
      for (int r = 0; r < kG; ++r) {
        if (r >= g) break;  // block-uniform
        float a = 0.0f;
#pragma unroll
        for (int i = 0; i < kDims; i += 4) {
          const float4 qv = *reinterpret_cast<const float4*>(&q_s[r][d0 + i]);
          a = fmaf(qv.x, kf[i], a);
          a = fmaf(qv.y, kf[i + 1], a);
          a = fmaf(qv.z, kf[i + 2], a);
          a = fmaf(qv.w, kf[i + 3], a);
        }
        a += __shfl_xor_sync(0xffffffffu, a, 1);
        a += __shfl_xor_sync(0xffffffffu, a, 2);
        a += __shfl_xor_sync(0xffffffffu, a, 4);
        if (lane % kLanesPerKey == 0) s_s[r][key] = visible ? a * scale : -INFINITY;
      }
    }
    __syncthreads();

    // Online softmax: warp r takes row r, a key a lane.
    if (warp < g) {
      const float s = s_s[warp][lane];
      const float m_new = fmaxf(m_run, WarpMax(s));
      const float corr = m_new == -INFINITY ? 1.0f : expf(m_run - m_new);
      const float pr = s == -INFINITY ? 0.0f : expf(s - m_new);
      l_run = l_run * corr + WarpSum(pr);
      m_run = m_new;
      p_s[lane][warp] = pr;
      if (lane == 0) corr_s[warp] = corr;
    }
    __syncthreads();

    // P.V: thread (pv_d, pv_rg) accumulates rows pv_rg + j * kThreadsPerDim.
#pragma unroll
    for (int j = 0; j < kRowsPerThread; ++j) {
      const int r = pv_rg + j * kThreadsPerDim;
      if (r < g) acc[j] *= corr_s[r];
    }
#pragma unroll 8
    for (int k = 0; k < kKeys; ++k) {
      const float v = __bfloat162float(sm.v[slot][k][pv_d]);
#pragma unroll
      for (int j = 0; j < kRowsPerThread; ++j) {
        const int r = pv_rg + j * kThreadsPerDim;
        if (r < g) acc[j] = fmaf(p_s[k][r], v, acc[j]);
      }
    }
  }
  CpAsyncWait<0>();  // nothing left in flight when the block exits

  if (warp < g && lane == 0) {
    m_s[warp] = m_run;
    l_s[warp] = l_run;
  }
  __syncthreads();
#pragma unroll
  for (int j = 0; j < kRowsPerThread; ++j) {
    const int r = pv_rg + j * kThreadsPerDim;
    if (r >= g) continue;
    const int64_t qrow = static_cast<int64_t>(c.row_base) * hq + h * g + r;
    if (p.num_splits == 1) {
      p.out[qrow * HD + pv_d] = acc[j] / l_s[r];
    } else {
      const int64_t prow = static_cast<int64_t>(split) * p.num_tokens * hq + qrow;
      p.part_o[prow * HD + pv_d] = acc[j];
      if (pv_d == 0) {
        p.part_ml[prow * 2] = m_s[r];
        p.part_ml[prow * 2 + 1] = l_s[r];
      }
    }
  }
  if (p.num_splits == 1) return;
  MergeSplitsIfLast<HD>(p, tile, c, h, g, hq, g, warp, lane);
}

template <int HD>
cudaError_t Launch(const AttentionParams& p, cudaStream_t stream) {
  constexpr int kSmem = sizeof(DecodeSmem<HD>);
  static const cudaError_t attr = cudaFuncSetAttribute(
      DmsDecodeAttentionKernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmem);
  if (attr != cudaSuccess) return attr;
  const dim3 grid(p.num_tiles, p.kv.num_kv_heads, p.num_splits);
  return LaunchKernel(LaunchGroup::kAttention, DmsDecodeAttentionKernel<HD>, grid, kThreads, kSmem,
                      stream, p);
}

}  // namespace

bool DmsDecodeAttentionSupported(KvDType dtype, int head_dim, int group) {
  return dtype == KvDType::kBF16 && (head_dim == 64 || head_dim == 128) && group >= 1 &&
         group <= kAttnDecodeMaxGroup;
}

cudaError_t LaunchDmsDecodeAttention(const AttentionParams& p, cudaStream_t stream) {
  if (p.num_tiles <= 0) return cudaSuccess;
  const int hkv = p.kv.num_kv_heads;
  if (hkv <= 0 || p.num_q_heads % hkv != 0 ||
      !DmsDecodeAttentionSupported(p.kv.dtype, p.kv.head_dim, p.num_q_heads / hkv) ||
      p.num_splits < 1 || (p.num_splits > 1 && (!p.part_o || !p.part_ml || !p.split_count))) {
    return cudaErrorInvalidValue;
  }
  return p.kv.head_dim == 128 ? Launch<128>(p, stream) : Launch<64>(p, stream);
}

}  // namespace dms::cuda
