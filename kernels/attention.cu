#include "kernels/attention.h"

#include <cfloat>
#include <climits>

#include "kernels/device_util.cuh"
#include "kernels/launch.cuh"

namespace dms::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr int kKeyTile = 32;  // one key per lane when scoring
constexpr int kRowsPerWarp = kAttnMaxRows / kWarps;

template <typename T>
struct Vec16;  // 16-byte vector load of T
template <>
struct Vec16<float> {
  static constexpr int kElems = 4;
  __device__ static void Load(const float* src, float* dst) {
    const float4 v = *reinterpret_cast<const float4*>(src);
    dst[0] = v.x; dst[1] = v.y; dst[2] = v.z; dst[3] = v.w;
  }
};
template <>
struct Vec16<__nv_bfloat16> {
  static constexpr int kElems = 8;
  __device__ static void Load(const __nv_bfloat16* src, float* dst) {
    const uint4 v = *reinterpret_cast<const uint4*>(src);
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __bfloat1622float2(h[i]);
      dst[2 * i] = f.x;
      dst[2 * i + 1] = f.y;
    }
  }
};

// grid: (tiles, Hkv, splits), block: kThreads.
template <typename T, int HD>
__global__ void __launch_bounds__(kThreads) DmsAttentionKernel(AttentionParams p) {
  constexpr int kNc = (HD + 31) / 32;  // head_dim elements per lane
  __shared__ float q_s[kAttnMaxRows][HD];
  __shared__ float k_s[kKeyTile][HD + 1];  // +1: lane-per-key reads hit distinct banks
  __shared__ float v_s[kKeyTile][HD];
  __shared__ int32_t pos_s[kKeyTile];     // INT_MAX: no key
  __shared__ uint8_t mark_s[kKeyTile];
  __shared__ const T* kptr_s[kKeyTile];
  __shared__ const T* vptr_s[kKeyTile];

  // No early PdlLaunchDependents: with it the o_proj GEMV streamed its first
  // weights during the attention and decode got slower (docs/cuda.md). The
  // decode KV append relies on it too (kv_append.h): the kernel after this
  // one starts only once these blocks have exited.
  const AttnTile tile = p.tiles[blockIdx.x];
  const int h = blockIdx.y, split = blockIdx.z;
  const StepChunk c = p.chunks[tile.chunk];
  const KvDeviceView& kv = p.kv;
  const int hq = p.num_q_heads, hkv = kv.num_kv_heads, g = hq / hkv;
  const int rows = tile.q_count * g;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t head = (static_cast<int64_t>(c.seq) * kv.num_layers + p.layer) * hkv + h;
  const int len = kv.head_len[head];
  const int window = kv.window, ring = window + 1;
  const int t0 = c.start_pos;
  const int32_t* table = kv.page_table + head * kv.max_blocks_per_head;
  const T* pool = static_cast<const T*>(kv.pool);
  const T* k_new = static_cast<const T*>(p.k_new);
  const T* v_new = static_cast<const T*>(p.v_new);

  // Keys [0, len) are cached slots, [len, num_keys) the chunk's tokens.
  const int num_keys = len + tile.q_begin + tile.q_count;
  int span = (num_keys + p.num_splits - 1) / p.num_splits;
  span = (span + kKeyTile - 1) / kKeyTile * kKeyTile;
  const int k_lo = split * span;
  const int k_hi = min(num_keys, k_lo + span);

  // Staging a tile of keys [k0, k0 + kKeyTile) in two parts. kCached: the
  // cache as earlier steps left it (page table, positions, ring marks, pool),
  // written by kernels that completed before the q;k;v GEMV did, so it may be
  // read before PdlWait when the QKV epilogue launched this kernel early. kNew:
  // what the epilogue writes (the chunk's own keys, the decision that marks
  // the previous token), after PdlWait. A thread below kKeyTile owns a key's
  // metadata; all threads then copy K and V rows into shared memory.
  constexpr int kCached = 1, kNew = 2, kAll = kCached | kNew;
  auto stage_meta = [&](int k0, int part) {
    if (threadIdx.x >= kKeyTile) return;
    const int kk = k0 + threadIdx.x;
    if (kk < len) {
      if (part & kCached) {
        const int32_t block = table[kk / kv.block_size];
        const int off = kk % kv.block_size;
        const int32_t pos = kv.pool_pos[static_cast<int64_t>(block) * kv.block_size + off];
        const T* kp = pool + ((static_cast<int64_t>(block) * 2) * kv.block_size + off) * HD;
        uint8_t mark = 0;
        if (window >= 0 && pos >= t0 - ring && pos != t0 - 1) {
          mark = kv.ring_evict[head * ring + pos % ring];
        }
        pos_s[threadIdx.x] = pos;
        mark_s[threadIdx.x] = mark;
        kptr_s[threadIdx.x] = kp;
        vptr_s[threadIdx.x] = kp + static_cast<int64_t>(kv.block_size) * HD;
      }
      // The previous token's mark is this step's decision.
      if ((part & kNew) && window >= 0 && pos_s[threadIdx.x] == t0 - 1) {
        mark_s[threadIdx.x] = p.decisions[static_cast<int64_t>(c.row_base) * hkv + h];
      }
    } else if (part & kNew) {
      int32_t pos = INT_MAX;  // no key
      uint8_t mark = 0;
      const T* kp = nullptr;
      const T* vp = nullptr;
      if (kk < k_hi) {
        const int jj = kk - len;
        pos = t0 + jj;
        const int64_t r = static_cast<int64_t>(c.row_base) + jj;
        kp = k_new + (r * hkv + h) * HD;
        vp = v_new + (r * hkv + h) * HD;
        mark = jj + 1 < c.n ? p.decisions[(r + 1) * hkv + h] : 0;
      }
      pos_s[threadIdx.x] = pos;
      mark_s[threadIdx.x] = mark;
      kptr_s[threadIdx.x] = kp;
      vptr_s[threadIdx.x] = vp;
    }
  };
  auto stage_kv = [&](int k0, int part) {
    constexpr int kVe = Vec16<T>::kElems;
    constexpr int kVecPerRow = HD / kVe;
    for (int i = threadIdx.x; i < kKeyTile * kVecPerRow; i += kThreads) {
      const int key = i / kVecPerRow, d0 = (i % kVecPerRow) * kVe;
      if (!(part & (k0 + key < len ? kCached : kNew))) continue;
      float kf[kVe], vf[kVe];
      if (pos_s[key] != INT_MAX) {
        Vec16<T>::Load(kptr_s[key] + d0, kf);
        Vec16<T>::Load(vptr_s[key] + d0, vf);
      } else {  // zeros, so that p = 0 never meets garbage (0 * NaN)
#pragma unroll
        for (int e = 0; e < kVe; ++e) kf[e] = vf[e] = 0.0f;
      }
#pragma unroll
      for (int e = 0; e < kVe; ++e) {
        k_s[key][d0 + e] = kf[e];
        v_s[key][d0 + e] = vf[e];
      }
    }
  };

  // The first tile's cached keys go out before PdlWait (a decode split is
  // often one tile): their chain of dependent loads (page table, position,
  // mark, K/V) overlaps the QKV epilogue.
  if (k_lo < k_hi) {
    stage_meta(k_lo, kCached);
    __syncthreads();
    stage_kv(k_lo, kCached);
  }
  PdlWait();

  for (int i = threadIdx.x; i < rows * HD; i += kThreads) {
    const int row = i / HD, d = i % HD;
    const int qi = tile.q_begin + row / g, qh = h * g + row % g;
    q_s[row][d] = p.q[((static_cast<int64_t>(c.row_base) + qi) * hq + qh) * HD + d];
  }

  float m[kRowsPerWarp], l[kRowsPerWarp], acc[kRowsPerWarp][kNc];
#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    m[rr] = -INFINITY;
    l[rr] = 0.0f;
#pragma unroll
    for (int e = 0; e < kNc; ++e) acc[rr][e] = 0.0f;
  }
  const float scale = 1.0f / sqrtf(static_cast<float>(HD));

  for (int k0 = k_lo; k0 < k_hi; k0 += kKeyTile) {
    if (k0 == k_lo) {
      stage_meta(k0, kNew);  // touches no entry stage_kv(kCached) reads
    } else {
      __syncthreads();  // the previous tile is consumed
      stage_meta(k0, kAll);
    }
    __syncthreads();
    stage_kv(k0, k0 == k_lo ? kNew : kAll);
    __syncthreads();  // K/V staged (and q_s written)

    const int32_t j = pos_s[lane];
    const bool key_ok = j != INT_MAX;
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; ++rr) {
      const int row = warp + kWarps * rr;
      if (row >= rows) break;  // warp-uniform
      const int i = t0 + tile.q_begin + row / g;
      const bool visible =
          key_ok && j <= i && (window < 0 || i - j <= window || mark_s[lane] == 0);
      float s = -INFINITY;
      if (visible) {
        float dot = 0.0f;
#pragma unroll 8
        for (int d = 0; d < HD; ++d) dot += q_s[row][d] * k_s[lane][d];
        s = dot * scale;
      }
      const float m_new = fmaxf(m[rr], WarpMax(s));
      if (m_new == -INFINITY) continue;  // nothing visible yet (warp-uniform)
      const float corr = expf(m[rr] - m_new);  // 0 when m was -inf
      const float pr = visible ? expf(s - m_new) : 0.0f;
      l[rr] = l[rr] * corr + WarpSum(pr);
#pragma unroll
      for (int e = 0; e < kNc; ++e) acc[rr][e] *= corr;
#pragma unroll 4
      for (int k = 0; k < kKeyTile; ++k) {
        const float pk = __shfl_sync(0xffffffffu, pr, k);
#pragma unroll
        for (int e = 0; e < kNc; ++e) {
          const int d = lane + 32 * e;
          if (d < HD) acc[rr][e] += pk * v_s[k][d];
        }
      }
      m[rr] = m_new;
    }
  }

#pragma unroll
  for (int rr = 0; rr < kRowsPerWarp; ++rr) {
    const int row = warp + kWarps * rr;
    if (row >= rows) break;
    const int qi = tile.q_begin + row / g, qh = h * g + row % g;
    const int64_t qrow = (static_cast<int64_t>(c.row_base) + qi) * hq + qh;
    if (p.num_splits == 1) {
      const float inv = 1.0f / l[rr];
#pragma unroll
      for (int e = 0; e < kNc; ++e) {
        const int d = lane + 32 * e;
        if (d < HD) p.out[qrow * HD + d] = acc[rr][e] * inv;
      }
    } else {
      const int64_t prow = static_cast<int64_t>(split) * p.num_tokens * hq + qrow;
#pragma unroll
      for (int e = 0; e < kNc; ++e) {
        const int d = lane + 32 * e;
        if (d < HD) p.part_o[prow * HD + d] = acc[rr][e];
      }
      if (lane == 0) {
        p.part_ml[prow * 2] = m[rr];
        p.part_ml[prow * 2 + 1] = l[rr];
      }
    }
  }
  if (p.num_splits == 1) return;

  // Split merge, fused: the last of the (tile, head)'s split blocks to finish
  // merges them. v1 was a second kernel (a block per token and query head):
  // ~10 us a layer at batch 1 on the H200, mostly its own latency.
  // Every thread's partials are visible device-wide before the count moves.
  __shared__ int last_s;
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) {
    int* count = p.split_count + static_cast<int64_t>(blockIdx.x) * hkv + h;
    last_s = atomicAdd(count, 1) == p.num_splits - 1;
    if (last_s) *count = 0;  // ready for the next launch (graph replays included)
  }
  __syncthreads();
  if (!last_s) return;
  __threadfence();
  // A warp per query row; lane k of a round of 32 splits holds split s0 + k's
  // weight exp(m_s - max) (0 for a split that saw no visible key: its
  // partial sum and accumulator are 0 too) and hands it to the others.
  const int splits = p.num_splits;
  const int64_t stride_rows = static_cast<int64_t>(p.num_tokens) * hq;
  for (int row = warp; row < rows; row += kWarps) {
    const int qi = tile.q_begin + row / g, qh = h * g + row % g;
    const int64_t qrow = (static_cast<int64_t>(c.row_base) + qi) * hq + qh;
    const float* ml = p.part_ml + qrow * 2;
    const float* po = p.part_o + qrow * HD;
    float mx = -INFINITY;
    for (int s = lane; s < splits; s += 32) mx = fmaxf(mx, __ldcg(ml + s * stride_rows * 2));
    mx = WarpMax(mx);
    float den = 0.0f, num[kNc];
#pragma unroll
    for (int e = 0; e < kNc; ++e) num[e] = 0.0f;
    for (int s0 = 0; s0 < splits; s0 += 32) {
      float wl = 0.0f;
      if (s0 + lane < splits) {
        const float ms = __ldcg(ml + (s0 + lane) * stride_rows * 2);
        if (ms != -INFINITY) {
          wl = expf(ms - mx);
          den += __ldcg(ml + (s0 + lane) * stride_rows * 2 + 1) * wl;
        }
      }
      const int n = min(32, splits - s0);
#pragma unroll 32
      for (int k = 0; k < n; ++k) {
        const float ws = __shfl_sync(0xffffffffu, wl, k);
        const float* src = po + (s0 + k) * stride_rows * HD;
#pragma unroll
        for (int e = 0; e < kNc; ++e) {
          const int d = lane + 32 * e;
          if (d < HD) num[e] += __ldcg(src + d) * ws;
        }
      }
    }
    den = WarpSum(den);
#pragma unroll
    for (int e = 0; e < kNc; ++e) {
      const int d = lane + 32 * e;
      if (d >= HD) break;
      p.out[qrow * HD + d] = num[e] / den;
      if (p.out_gin.hi) StoreGemmInput(p.out_gin, qrow * HD + d, num[e] / den);
    }
  }
}

template <typename T, int HD>
cudaError_t Launch(const AttentionParams& p, cudaStream_t stream) {
  const dim3 grid(p.num_tiles, p.kv.num_kv_heads, p.num_splits);
  return LaunchKernel(LaunchGroup::kAttention, DmsAttentionKernel<T, HD>, grid, kThreads, 0, stream,
                      p);
}

template <typename T>
cudaError_t LaunchForType(const AttentionParams& p, cudaStream_t stream) {
  switch (p.kv.head_dim) {
    case 16: return Launch<T, 16>(p, stream);
    case 32: return Launch<T, 32>(p, stream);
    case 64: return Launch<T, 64>(p, stream);
    case 128: return Launch<T, 128>(p, stream);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace

cudaError_t LaunchDmsAttention(const AttentionParams& p, cudaStream_t stream) {
  if (p.num_tiles <= 0) return cudaSuccess;
  const int hkv = p.kv.num_kv_heads;
  if (hkv <= 0 || p.num_q_heads % hkv != 0 || p.num_q_heads / hkv > kAttnMaxRows ||
      p.num_splits < 1 || (p.num_splits > 1 && (!p.part_o || !p.part_ml || !p.split_count))) {
    return cudaErrorInvalidValue;
  }
  return p.kv.dtype == KvDType::kBF16 ? LaunchForType<__nv_bfloat16>(p, stream)
                                      : LaunchForType<float>(p, stream);
}

}  // namespace dms::cuda
