// The split-K merge of the decode attention kernels (attention.cu and
// attention_decode.cu): a block of kAttnSimtWarps warps, the last of a
// (tile, KV head)'s split blocks to finish, folds the splits' partial
// (max, sum, accumulator) triples into the output rows (and the GEMM input
// when p.out_gin is set).
#pragma once

#include <cmath>

#include "kernels/attention.h"
#include "kernels/device_util.cuh"

namespace dms::cuda {

// The split merge for one (tile, KV head). A query row is folded by wpr =
// kWarps / rows warps (1 when rows > kWarps), each taking its own rounds of
// 16 splits; lane l holds elements 4l .. 4l+3 of the row (HD <= 128). A round
// has all its loads in flight at once -- lane k loads split s + k's (m, l),
// every lane one float4 of each split's partial row -- and folds them into a
// running (max, den, num) the way the online softmax does; the row's warps
// then combine through shared memory. With g = 4 (Qwen3) and 32 splits that
// is one L2 round trip.
struct MergeState {
  float mx = -INFINITY, den = 0.0f;
  float4 num = make_float4(0.0f, 0.0f, 0.0f, 0.0f);

  // Folds in a state (or a split's partial) with max m, sum l and
  // accumulator o; weight 0 when m is -inf (nothing visible there).
  __device__ void Fold(float m, float l, float4 o) {
    const float m_new = fmaxf(mx, m);
    if (m_new == -INFINITY) return;
    const float c0 = expf(mx - m_new), c1 = m == -INFINITY ? 0.0f : expf(m - m_new);
    den = den * c0 + l * c1;
    num = make_float4(num.x * c0 + o.x * c1, num.y * c0 + o.y * c1, num.z * c0 + o.z * c1,
                      num.w * c0 + o.w * c1);
    mx = m_new;
  }
};

template <int HD>
__device__ __forceinline__ void MergeSplits(const AttentionParams& p, const AttnTile& tile,
                                            const StepChunk& c, int h, int g, int hq, int rows,
                                            int warp, int lane) {
  static_assert(HD % 4 == 0 && HD <= 128, "a lane holds one float4 of a row");
  constexpr int kWarps = kAttnSimtWarps;
  constexpr int kRound = kAttnMergeRound;
  __shared__ float4 num_s[kWarps][32];
  __shared__ float2 mden_s[kWarps];
  const bool owns = lane * 4 < HD;
  const int splits = p.num_splits;
  const int wpr = DmsAttentionMergeWarpsPerRow(rows);  // block-uniform
  const int64_t stride_rows = static_cast<int64_t>(p.num_tokens) * hq;
  auto qrow_of = [&](int row) {
    const int qi = tile.q_begin + row / g, qh = h * g + row % g;
    return (static_cast<int64_t>(c.row_base) + qi) * hq + qh;
  };
  // Splits sub*kRound + [0, kRound), then kRound * wpr further on, ...
  auto fold_row = [&](int64_t qrow, int sub) {
    const float* ml = p.part_ml + qrow * 2;
    const float* po = p.part_o + qrow * HD + lane * 4;
    MergeState st;
    for (int s0 = sub * kRound; s0 < splits; s0 += kRound * wpr) {
      const int n = min(kRound, splits - s0);
      float ms = -INFINITY, ls = 0.0f;
      if (lane < n) {
        const float2 v = __ldcg(reinterpret_cast<const float2*>(ml + (s0 + lane) * stride_rows * 2));
        ms = v.x;
        ls = v.y;
      }
      float4 o[kRound];
#pragma unroll
      for (int k = 0; k < kRound; ++k) {
        o[k] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (k < n && owns) o[k] = __ldcg(reinterpret_cast<const float4*>(po + (s0 + k) * stride_rows * HD));
      }
      const float m_new = fmaxf(st.mx, WarpMax(ms));
      if (m_new == -INFINITY) continue;  // no split so far saw a visible key (warp-uniform)
      const float corr = expf(st.mx - m_new);  // 0 while mx is -inf
      // A split that saw no visible key has m = -inf and weight 0 (its l and
      // accumulator are 0 too).
      const float wl = ms == -INFINITY ? 0.0f : expf(ms - m_new);
      st.den = st.den * corr + WarpSum(ls * wl);
      float4 num = make_float4(st.num.x * corr, st.num.y * corr, st.num.z * corr, st.num.w * corr);
#pragma unroll
      for (int k = 0; k < kRound; ++k) {
        const float ws = __shfl_sync(0xffffffffu, wl, k);  // 0 for k >= n
        num.x += o[k].x * ws;
        num.y += o[k].y * ws;
        num.z += o[k].z * ws;
        num.w += o[k].w * ws;
      }
      st.num = num;
      st.mx = m_new;
    }
    return st;
  };
  auto store = [&](int64_t qrow, const MergeState& st) {
    if (!owns) return;
    const float4 r = make_float4(st.num.x / st.den, st.num.y / st.den, st.num.z / st.den,
                                 st.num.w / st.den);
    *reinterpret_cast<float4*>(p.out + qrow * HD + lane * 4) = r;
    if (p.out_gin.hi) StoreGemmInput4(p.out_gin, qrow * HD + lane * 4, {r.x, r.y, r.z, r.w});
  };

  if (wpr == 1) {
    for (int row = warp; row < rows; row += kWarps) {
      const int64_t qrow = qrow_of(row);
      store(qrow, fold_row(qrow, 0));
    }
    return;
  }
  // wpr > 1: warps [row * wpr, row * wpr + wpr) fold row; at most one row a warp.
  const int row = warp / wpr, sub = warp % wpr;
  const bool active = row < rows;
  MergeState st;
  if (active) st = fold_row(qrow_of(row), sub);
  if (active && sub > 0) {
    num_s[warp][lane] = st.num;
    if (lane == 0) mden_s[warp] = make_float2(st.mx, st.den);
  }
  __syncthreads();
  if (!active || sub > 0) return;
  for (int j = 1; j < wpr; ++j) {
    const float2 md = mden_s[warp + j];
    st.Fold(md.x, md.y, num_s[warp + j][lane]);
  }
  store(qrow_of(row), st);
}

// Called by every thread of a split block after it wrote its partials: the
// last block of the (tile, KV head) to arrive merges. Release/acquire
// through the count (CUTLASS's GenericBarrier pattern): the barrier orders
// every thread's partial writes before thread 0's release; its acquire and
// the barrier after it order the merge's reads.
template <int HD>
__device__ __forceinline__ void MergeSplitsIfLast(const AttentionParams& p, const AttnTile& tile,
                                                  const StepChunk& c, int h, int g, int hq,
                                                  int rows, int warp, int lane) {
  __shared__ int last_s;
  __syncthreads();
  if (threadIdx.x == 0) {
    int* count = p.split_count + static_cast<int64_t>(blockIdx.x) * p.kv.num_kv_heads + h;
    int old;
    asm volatile("atom.acq_rel.gpu.global.add.s32 %0, [%1], 1;" : "=r"(old) : "l"(count) : "memory");
    last_s = old == p.num_splits - 1;
    if (last_s) *count = 0;  // ready for the next launch (graph replays included)
  }
  __syncthreads();
  if (!last_s) return;
  MergeSplits<HD>(p, tile, c, h, g, hq, rows, warp, lane);
}

}  // namespace dms::cuda
