// Per-tile mask and online softmax of the tensor-core DMS prefill attention
// (both kernels: attention_mma.cu, attention_ws.cu), on the m16n8 accumulator
// layout of a warp's 16 rows x 64 keys: s[nt][e] is row quad + 8 * (e >> 1),
// key 8 * nt + 2 * qlane + (e & 1).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "kernels/attention_walk.cuh"

namespace dms::cuda::attn_mma {

// 2^x by the special-function unit, denormal results flushed to zero (they
// are below bf16's use here anyway): one MUFU.EX2, where exp2f adds range
// fix-ups around it.
__device__ __forceinline__ float Exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// This thread's two rows of a block's tile (fragment rows quad and quad + 8
// of the warp's 16 rows from row0; row r is head r / tq, token r % tq of the
// KV group h): the query position (-1 for a padding row: it sees no key and
// is not stored) and the row's index into [N * Hq].
__device__ __forceinline__ void ThreadQueryRows(const AttnTile& tile, const StepChunk& c, int h, int g,
                                                int hq, int tq, int row0, int quad, int (&qpos)[2],
                                                int64_t (&qrow)[2]) {
  const int qa = c.start_pos + tile.q_begin;
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int r = row0 + quad + 8 * hh;
    const int tok = r % tq, hg = r / tq;
    qpos[hh] = hg < g && tok < tile.q_count ? qa + tok : -1;
    qrow[hh] = (static_cast<int64_t>(c.row_base) + tile.q_begin + tok) * hq + h * g + hg;
  }
}

// Applies a tile's visibility to its scores. span/bias: the tile's 64 keys
// in shared memory (KeyWalk's spans; 0 / -inf per key), qpos: this thread's
// two rows' positions (-1: padding, sees nothing).
__device__ __forceinline__ void MaskScores(float (&s)[8][4], int mode, const int2* span,
                                           const float* bias, const int (&qpos)[2], int qlane) {
  if (mode == kMask) {
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      // Keys nt * 8 + 2 * qlane and the one after: one 16-byte load.
      const int4 sp = *reinterpret_cast<const int4*>(&span[nt * 8 + 2 * qlane]);
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = qpos[e >> 1];
        const bool vis = (e & 1) ? sp.z <= i && i <= sp.w : sp.x <= i && i <= sp.y;
        s[nt][e] = vis ? s[nt][e] : -INFINITY;
      }
    }
  } else if (mode == kBias) {
#pragma unroll
    for (int nt = 0; nt < 8; ++nt) {
      const float2 b = *reinterpret_cast<const float2*>(&bias[nt * 8 + 2 * qlane]);
      s[nt][0] += b.x;
      s[nt][1] += b.y;
      s[nt][2] += b.x;
      s[nt][3] += b.y;
    }
  }
}

// This lane's part of row hh's maximum over a tile's (unscaled) scores.
__device__ __forceinline__ float LaneRowMax(const float (&s)[8][4], int hh) {
  float mx = -INFINITY;
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * hh], s[nt][2 * hh + 1]));
  return mx;
}

// Row hh's weights exp2(s * scale - m_use) as bf16 A fragments of m16n8k16
// (pa[kc] takes n-tiles 2 kc, 2 kc + 1); returns this lane's part of their
// sum in f32 (as FlashAttention does, not the bf16 roundings: two unpacks
// an element fewer, and two independent chains).
__device__ __forceinline__ float RowWeights(const float (&s)[8][4], int hh, uint32_t (&pa)[4][4],
                                            float scale_log2, float m_use) {
  float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) {
    const float e0 = Exp2(fmaf(s[nt][2 * hh], scale_log2, -m_use));
    const float e1 = Exp2(fmaf(s[nt][2 * hh + 1], scale_log2, -m_use));
    sum0 += e0;
    sum1 += e1;
    const __nv_bfloat162 pr = __floats2bfloat162_rn(e0, e1);
    pa[nt / 2][hh + 2 * (nt % 2)] = *reinterpret_cast<const uint32_t*>(&pr);
  }
  return sum0 + sum1;
}

// The running max moves only when a tile's exceeds it by more than kMaxSlack
// (base 2): the weights are then at most 2^8, exact in f32 and in bf16's
// range, and O / l is unchanged; o is rarely rescaled.
constexpr float kMaxSlack = 8.0f;

// Online softmax of one tile's (unscaled) scores for this thread's row hh
// (0: fragment row quad, 1: quad + 8): the new running max m (base 2, scale
// folded into the exponent's FMA), P as bf16 A fragments, l += the sum of P
// (f32). Returns the factor o's row must be scaled by (the change of the
// row's max; 0 while m was -inf). A row's 64 keys are spread over the 4
// lanes of a quad.
__device__ __forceinline__ float SoftmaxRow(float (&s)[8][4], int hh, float (&m)[2], float (&l)[2],
                                            uint32_t (&pa)[4][4], float scale_log2) {
  float mx = LaneRowMax(s, hh);
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
  mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
  const float m_tile = mx * scale_log2;
  const float m_new = m_tile > m[hh] + kMaxSlack ? m_tile : m[hh];
  const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // nothing visible yet
  const float corr = Exp2(m[hh] - m_use);
  m[hh] = m_new;
  l[hh] = l[hh] * corr + RowWeights(s, hh, pa, scale_log2, m_use);
  return corr;
}

// o's row hh *= corr, skipped for a warp whose rows' maxima all held.
// o must not be in flight in a wgmma.
template <int HD>
__device__ __forceinline__ void RescaleRow(float (&o)[HD / 8][4], int hh, float corr) {
  if (__any_sync(0xffffffffu, corr != 1.0f)) {
#pragma unroll
    for (int dt = 0; dt < HD / 8; ++dt) {
      o[dt][2 * hh] *= corr;
      o[dt][2 * hh + 1] *= corr;
    }
  }
}

// Both rows' online softmax with o rescaled at once (SoftmaxRow, RescaleRow).
// o must not be in flight in a wgmma.
template <int HD>
__device__ __forceinline__ void OnlineSoftmax(float (&s)[8][4], float (&m)[2], float (&l)[2],
                                              uint32_t (&pa)[4][4], float scale_log2,
                                              float (&o)[HD / 8][4]) {
  // The common case: no lane of the warp has a score more than kMaxSlack
  // above its row's max, so no row's (quad's) max moves either: no
  // shuffles, no correction, no rescale (the same result as below).
  const float mx0 = LaneRowMax(s, 0), mx1 = LaneRowMax(s, 1);
  if (!__any_sync(0xffffffffu, mx0 * scale_log2 > m[0] + kMaxSlack ||
                                   mx1 * scale_log2 > m[1] + kMaxSlack)) {
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      l[hh] += RowWeights(s, hh, pa, scale_log2, m[hh] == -INFINITY ? 0.0f : m[hh]);
    }
    return;
  }
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) RescaleRow<HD>(o, hh, SoftmaxRow(s, hh, m, l, pa, scale_log2));
}

// A lane's part of a row's weights against a running max that has not
// moved (16 of them) may sum to at most this: each weight is then below
// 2^40, and o and l, summed over every key of a prompt (2^40 * 2^6 keys a
// tile * 2^11 tiles at 128K keys * |v|), stay far inside f32's range, with
// the same relative precision as weights below 1.
constexpr float kMaxLaneSum = 1099511627776.0f;  // 2^40

// The tensor-core kernel's common case of a tile, without the rows' maxima
// (OnlineSoftmax's 32 max instructions and the vote on them): the weights
// against the running max as it is, kept (P in pa, l += their sums) if no
// lane of the threads that computed the scores together sums them past
// kMaxLaneSum (so none is large; an inf or NaN sum fails the test too) and
// every row there has a max already (against none, a row of very negative
// scores would underflow to 0; a padding row, which sees no key, starts
// with a finite m). any_in_group(p): p of any of those threads (a warp for
// mma.sync, a warpgroup for wgmma: the redo issues the scores' MMA again,
// which they must all issue). Returns false with l and m untouched
// otherwise: the caller recomputes s (the scores are not kept alive for
// this rare case: they would spill) and runs OnlineSoftmax, whose result is
// the same up to rounding (O / l does not depend on m).
template <class AnyInGroup>
__device__ __forceinline__ bool TrySoftmaxAtRunningMax(const float (&s)[8][4], const float (&m)[2],
                                                       float (&l)[2], uint32_t (&pa)[4][4],
                                                       float scale_log2, AnyInGroup any_in_group) {
  const float sum0 = RowWeights(s, 0, pa, scale_log2, m[0]);
  const float sum1 = RowWeights(s, 1, pa, scale_log2, m[1]);
  if (any_in_group(!(sum0 <= kMaxLaneSum) || !(sum1 <= kMaxLaneSum) || m[0] == -INFINITY ||
                   m[1] == -INFINITY)) {
    return false;
  }
  l[0] += sum0;
  l[1] += sum1;
  return true;
}

// O / l of this thread's two rows to the output: the o_proj GEMM input
// (bf16) when out_gin.hi is set, else f32. qrow: the rows' indices into
// [N * Hq]; padding rows (qpos < 0) are not stored.
template <int HD>
__device__ __forceinline__ void StoreAttentionRows(const AttentionParams& p, const float (&o)[HD / 8][4],
                                                   const float (&l)[2], const int (&qpos)[2],
                                                   const int64_t (&qrow)[2], int qlane) {
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    float sum = l[hh];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (qpos[hh] < 0) continue;
    const float inv = 1.0f / sum;  // > 0: every query sees itself
    if (p.out_gin.hi != nullptr) {
      // Straight into the o_proj GEMM input (bf16), no f32 pass.
      __nv_bfloat16* out = p.out_gin.hi + qrow[hh] * HD + 2 * qlane;
#pragma unroll
      for (int dt = 0; dt < HD / 8; ++dt) {
        *reinterpret_cast<__nv_bfloat162*>(out + dt * 8) =
            __floats2bfloat162_rn(o[dt][2 * hh] * inv, o[dt][2 * hh + 1] * inv);
      }
      continue;
    }
    float* out = p.out + qrow[hh] * HD + 2 * qlane;
#pragma unroll
    for (int dt = 0; dt < HD / 8; ++dt) {
      *reinterpret_cast<float2*>(out + dt * 8) =
          make_float2(o[dt][2 * hh] * inv, o[dt][2 * hh + 1] * inv);
    }
  }
}

}  // namespace dms::cuda::attn_mma
