// The key walk of the tensor-core DMS prefill attention, shared by its two
// kernels (attention_mma.cu: every warp computes and resolves; attention_ws.cu:
// a producer warpgroup resolves and copies, two consumer warpgroups compute).
//
// One work item = (query tile of a chunk, KV head h). Its keys, in walk
// order, key index kk:
//   [0, cached)                h's cached slots through the page table: all
//                              of [0, len), or, for a tile past the chunk's
//                              first W + 1 queries with the cached-slot list
//                              (LaunchDmsCachedKeptKeys), [0, tail_lo) and
//                              then the listed slots (the marked keys the
//                              cache holds for the window are invisible to it)
//   [cached, cached + gathered) the chunk's unmarked keys older than every
//                              query's window, from the kept list
//                              (LaunchDmsKeptKeys; marked ones are invisible
//                              to the whole tile and never read)
//   [.., num_keys)             the chunk keys from dense_begin to the tile's
//                              last query, one by one
// A key is resolved to its position, its K/V rows and the range of query
// positions that see it (span: x = position, INT_MAX for no key; y = x + W
// for a marked key, INT_MAX otherwise), plus three votes over the tile's
// query range [qa, qb]: does any / every query see it, or none.
#pragma once

#include <cuda_bf16.h>

#include <climits>
#include <cstdint>

#include "kernels/attention.h"

namespace dms::cuda::attn_mma {

// Tile modes a key tile's votes decide (the same for every row of a block).
enum TileMode : int {
  kSkip = 0,  // no query of the block sees any key of the tile
  kMask = 1,  // mask per (query, key) element from the spans
  kBias = 2,  // every key seen by all queries or by none: a per-key 0 / -inf bias
  kFull = 3,  // every query sees every key
};

// Mode from the any / uniform / all ballots of the two warps that resolved
// a 64-key tile.
__device__ __forceinline__ int TileModeOf(const uint32_t (&v0)[3], const uint32_t (&v1)[3]) {
  if ((v0[0] | v1[0]) == 0) return kSkip;
  if ((v0[1] & v1[1]) != 0xffffffffu) return kMask;
  return (v0[2] & v1[2]) == 0xffffffffu ? kFull : kBias;
}

// The same votes as three bits per warp (bit 0: any, 1: uniform, 2: all,
// over the warp's 32 keys), one byte per warp of a 32-bit word: the tile's
// mode is then one shared load and a few instructions.
__device__ __forceinline__ uint32_t WarpVoteBits(bool any, bool uniform, bool all) {
  return (__any_sync(0xffffffffu, any) ? 1u : 0u) | (__all_sync(0xffffffffu, uniform) ? 2u : 0u) |
         (__all_sync(0xffffffffu, all) ? 4u : 0u);
}
__device__ __forceinline__ int TileModeOfBits(uint32_t votes) {
  const uint32_t w0 = votes & 0xffu, w1 = (votes >> 8) & 0xffu, both = w0 & w1;
  if (((w0 | w1) & 1u) == 0) return kSkip;
  if ((both & 2u) == 0) return kMask;
  return (both & 4u) != 0 ? kFull : kBias;
}

struct ResolvedKey {
  int2 span;
  const __nv_bfloat16* kp;  // no key: the chunk's first K row (copied, masked out)
  const __nv_bfloat16* vp;
  bool any, all, none;
};

template <int HD>
struct KeyWalk {
  const AttentionParams* p;
  StepChunk c;
  int h, len, cached, tail_lo, window, t0, qa, qb, gathered, dense_begin, num_keys;
  int64_t head;
  const int32_t* table;

  __device__ __forceinline__ KeyWalk(const AttentionParams& params, const AttnTile& tile, int kv_head)
      : p(&params), c(params.chunks[tile.chunk]), h(kv_head) {
    const KvDeviceView& kv = params.kv;
    const int hkv = kv.num_kv_heads;
    head = (static_cast<int64_t>(c.seq) * kv.num_layers + params.layer) * hkv + h;
    len = kv.head_len[head];
    window = kv.window;
    t0 = c.start_pos;
    qa = t0 + tile.q_begin;
    qb = qa + tile.q_count - 1;
    const int q_end = tile.q_begin + tile.q_count;
    gathered = 0;
    dense_begin = 0;
    cached = len;
    tail_lo = len;
    if (params.kept_index != nullptr && window >= 0) {
      const int cut = tile.q_begin - window;
      if (cut > 0) {
        gathered = params.kept_count[(static_cast<int64_t>(c.row_base) + cut - 1) * hkv + h];
        dense_begin = cut;
        if (params.cache_tail != nullptr) {
          const int2 t = *reinterpret_cast<const int2*>(
              params.cache_tail + (static_cast<int64_t>(tile.chunk) * hkv + h) * 2);
          tail_lo = t.x;
          cached = t.x + t.y;
        }
      }
    }
    num_keys = cached + gathered + (q_end - dense_begin);
    table = kv.page_table + head * kv.max_blocks_per_head;
  }

  __device__ __forceinline__ int NumTiles(int key_tile) const {
    return (num_keys + key_tile - 1) / key_tile;
  }

  // The first load of key kk's resolve, which nothing else of the key
  // depends on: a listed cached key's pool row, an unlisted one's page-table
  // block, a gathered key's chunk index, a dense-band key's mark (0 past the
  // keys). A kernel may issue it a tile ahead and pass it to Prefetch2, so
  // that its latency hides under the math of the tile between.
  __device__ __forceinline__ int Prefetch(int kk) const {
    const int hkv = p->kv.num_kv_heads;
    if (kk < cached) {
      if (kk >= tail_lo) {
        return p->cache_kept_index[(static_cast<int64_t>(c.row_base) + kk - tail_lo) * hkv + h];
      }
      return table[kk / p->kv.block_size];
    }
    if (kk < num_keys) {
      const int gk = kk - cached;
      if (gk < gathered) return p->kept_index[(static_cast<int64_t>(c.row_base) + gk) * hkv + h];
      const int jj = dense_begin + (gk - gathered);
      return jj + 1 < c.n ? p->decisions[(static_cast<int64_t>(c.row_base) + jj + 1) * hkv + h] : 0;
    }
    return 0;
  }

  // The second load, from the first (pre = Prefetch(kk)): a cached key's
  // position. {pre, that} (the other keys need no second load: {pre, 0}).
  // Issued a tile after Prefetch and a tile before Resolve, the cached
  // keys' chain (block or pool row -> position) costs the walk no wait.
  __device__ __forceinline__ int2 Prefetch2(int kk, int pre) const {
    if (kk >= cached) return make_int2(pre, 0);
    const int bs = p->kv.block_size;
    const int64_t row = kk >= tail_lo ? pre : static_cast<int64_t>(pre) * bs + kk % bs;
    return make_int2(pre, p->kv.pool_pos[row]);
  }

  // pre: Prefetch2(kk, Prefetch(kk)), each issued whenever suits the caller.
  __device__ __forceinline__ ResolvedKey Resolve(int kk, int2 pre) const {
    const KvDeviceView& kv = p->kv;
    const int hkv = kv.num_kv_heads, ring = window + 1;
    const __nv_bfloat16* k_new = static_cast<const __nv_bfloat16*>(p->k_new);
    const __nv_bfloat16* v_new = static_cast<const __nv_bfloat16*>(p->v_new);
    int32_t pos = INT_MAX;
    uint8_t mark = 0;
    ResolvedKey r;
    r.kp = k_new;
    r.vp = v_new;
    if (kk < cached) {
      // Listed slots are unmarked or older than the ring (no mark load).
      // Pool block b holds K rows [2 b bs, 2 b bs + bs), then its V rows.
      const bool listed = kk >= tail_lo;
      const int bs = kv.block_size;
      const int64_t block = listed ? pre.x / bs : pre.x;
      const int off = listed ? pre.x % bs : kk % bs;
      pos = pre.y;
      r.kp = static_cast<const __nv_bfloat16*>(kv.pool) + ((block * 2) * bs + off) * HD;
      r.vp = r.kp + static_cast<int64_t>(bs) * HD;
      if (!listed && window >= 0 && pos >= t0 - ring) {
        mark = pos == t0 - 1 ? p->decisions[static_cast<int64_t>(c.row_base) * hkv + h]
                             : kv.ring_evict[head * ring + pos % ring];
      }
    } else if (kk < num_keys) {
      const int gk = kk - cached;
      const int jj = gk < gathered ? pre.x : dense_begin + (gk - gathered);
      pos = t0 + jj;
      const int64_t row = static_cast<int64_t>(c.row_base) + jj;
      r.kp = k_new + (row * hkv + h) * HD;
      r.vp = v_new + (row * hkv + h) * HD;
      // Kept-list keys are unmarked by definition (no load).
      mark = gk >= gathered ? static_cast<uint8_t>(pre.x) : 0;
    }
    r.span = make_int2(pos, window >= 0 && mark != 0 && pos != INT_MAX ? pos + window : INT_MAX);
    // Some query i in [qa, qb] sees key j iff j <= qb and the nearest such i
    // (max(j, qa)) is within the window or the key is not marked; all see it
    // iff j <= qa and the farthest (qb) is within the window or the key is
    // not marked. None sees it if it is missing, or older than every
    // query's window and marked.
    const bool unmarked = window < 0 || mark == 0;
    r.any = pos != INT_MAX && pos <= qb && (unmarked || max(pos, qa) - pos <= window);
    r.all = pos != INT_MAX && pos <= qa && (unmarked || qb - pos <= window);
    r.none = pos == INT_MAX || (!unmarked && pos <= qa && qa - pos > window);
    return r;
  }
};

}  // namespace dms::cuda::attn_mma
