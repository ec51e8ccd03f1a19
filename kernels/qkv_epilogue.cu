#include "kernels/qkv_epilogue.h"

#include <type_traits>

#include "kernels/device_util.cuh"
#include "kernels/launch.cuh"

namespace dms::cuda {
namespace {

// 16 warps: a decode step has one block per token, and the ~48 heads of a
// Qwen3-8B token are each a chain of dependent loads and reductions, so
// more warps walk fewer heads each.
constexpr int kWarps = 16;
constexpr int kMaxHeadDim = 256;
constexpr int kMaxKvHeads = 64;
constexpr int kSplitTokens = 16;  // steps up to this many tokens split a token over blocks

// Head dims other than 64/128/256 (the rows kernel below takes those).
// grid: (tokens, head groups). Block y of a token takes the heads whose
// index / kWarps is y modulo gridDim.y, a warp each. Decode steps split the
// token over several blocks (one block would walk 3 heads a warp); the block that owns a decision's source head writes
// it (kNeuron: q head h * g, or 0 per layer; otherwise the prologue's value,
// written by block 0).
template <typename T>
__global__ void QkvEpilogueKernel(QkvEpilogueParams p) {
  __shared__ float buf[kWarps][kMaxHeadDim];
  __shared__ uint8_t dec[kMaxKvHeads];
  __shared__ float dec_logit[kMaxKvHeads];
  const int64_t r = blockIdx.x;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int hd = p.head_dim, half = hd / 2, hq = p.num_q_heads, hkv = p.num_kv_heads;
  const int g = hq / hkv;
  const int heads = hq + 2 * hkv;

  // A head's bias and norm weight, lane + 32 k in element k. Weights: the
  // warp's first head loads them before PdlWait, a load fewer in its chain.
  constexpr int kPerLane = kMaxHeadDim / 32;
  auto load_consts = [&](int head, float (&bv)[kPerLane], float (&wv)[kPerLane]) {
    const bool is_q = head < hq, is_k = !is_q && head < hq + hkv;
    const float* bias = is_q ? p.q_bias : is_k ? p.k_bias : p.v_bias;
    const int bias_head = is_q ? head : is_k ? head - hq : head - hq - hkv;
    const float* w = is_q ? p.q_norm : is_k ? p.k_norm : nullptr;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int d = lane + 32 * k;
      bv[k] = bias && d < hd ? bias[bias_head * hd + d] : 0.0f;
      wv[k] = w && d < hd ? w[d] : 0.0f;
    }
  };
  const int head0 = blockIdx.y * kWarps + warp;
  float bias0[kPerLane], w0[kPerLane];
  if (head0 < heads) load_consts(head0, bias0, w0);
  // Wait first, then let the attention launch: its blocks stage the cached
  // keys before their own PdlWait, and started earlier they would take SM
  // slots from the q;k;v GEMV still streaming its weights.
  PdlWait();
  PdlLaunchDependents();
  const int64_t stride = static_cast<int64_t>(hq + 2 * hkv) * hd;
  const float* row = p.qkv + r * stride;
  const int pos = p.positions[r];
  float* b = buf[warp];

  if (threadIdx.x < hkv) {
    float logit = 0.0f;
    if (p.mode == DecisionMode::kProjection) {
      logit = __fsub_rn(__fmul_rn(p.alpha_logits[r * hkv + threadIdx.x], p.alpha_scale), p.alpha_offset);
    }
    dec_logit[threadIdx.x] = logit;
    dec[threadIdx.x] = logit > 0.0f;
  }
  __syncthreads();

  for (int head = head0; head < heads; head += kWarps * gridDim.y) {
    const bool is_q = head < hq, is_k = !is_q && head < hq + hkv;
    const float* src = row + static_cast<int64_t>(head) * hd;
    const bool has_bias = (is_q ? p.q_bias : is_k ? p.k_bias : p.v_bias) != nullptr;
    const int bias_head = is_q ? head : is_k ? head - hq : head - hq - hkv;
    float bv[kPerLane], wv[kPerLane];
    if (head == head0) {
#pragma unroll
      for (int k = 0; k < kPerLane; ++k) bv[k] = bias0[k], wv[k] = w0[k];
    } else {
      load_consts(head, bv, wv);
    }
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int d = lane + 32 * k;
      if (d >= hd) break;
      float v = src[d];
      if (has_bias) v += bv[k];
      b[d] = v;
    }
    __syncwarp();
    if (!is_q && !is_k) {
      T* out = static_cast<T*>(p.v_out) + (r * hkv + bias_head) * hd;
      for (int d = lane; d < hd; d += 32) out[d] = FromFloat<T>(b[d]);
      __syncwarp();
      continue;
    }
    // RMSNorm over the head (fp32), then the DMS decision element.
    float ss = 0.0f;
    for (int d = lane; d < hd; d += 32) ss = __fmaf_rn(b[d], b[d], ss);
    ss = WarpSum(ss);
    const float inv = 1.0f / sqrtf(ss / hd + p.eps);
    __syncwarp();
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int d = lane + 32 * k;
      if (d < hd) b[d] = b[d] * inv * wv[k];
    }
    __syncwarp();
    const bool neuron_head = is_q && p.mode == DecisionMode::kNeuron && head % g == 0;
    if (neuron_head && lane == 0) {
      const float logit = __fsub_rn(__fmul_rn(b[hd - 1], p.alpha_scale), p.alpha_offset);
      dec_logit[head / g] = logit;
      dec[head / g] = logit > 0.0f;
      b[hd - 1] = 0.0f;
    }
    __syncwarp();
    // RoPE, rotate-half: (a, b) at (i, i + half) -> (a c - b s, b c + a s).
    const float* cs = p.rope_cos + static_cast<int64_t>(pos) * half;
    const float* sn = p.rope_sin + static_cast<int64_t>(pos) * half;
    float rot[kMaxHeadDim / 64][2];
#pragma unroll
    for (int k = 0; k < kMaxHeadDim / 64; ++k) {
      const int i = lane + 32 * k;
      if (i < half) {
        const float a = b[i], bb = b[i + half];
        // Explicit rounding (no FMA contraction): the same bits as the CPU reference.
        rot[k][0] = __fsub_rn(__fmul_rn(a, cs[i]), __fmul_rn(bb, sn[i]));
        rot[k][1] = __fadd_rn(__fmul_rn(bb, cs[i]), __fmul_rn(a, sn[i]));
      }
    }
    __syncwarp();
#pragma unroll
    for (int k = 0; k < kMaxHeadDim / 64; ++k) {
      const int i = lane + 32 * k;
      if (i < half) {
        b[i] = rot[k][0];
        b[i + half] = rot[k][1];
      }
    }
    __syncwarp();
    if (neuron_head && lane == 0) b[hd - 1] = 0.0f;
    __syncwarp();
    if (is_q && p.q_out_bf16) {
      __nv_bfloat16* out = p.q_out_bf16 + (r * hq + head) * hd;
      for (int d = lane; d < hd; d += 32) out[d] = __float2bfloat16_rn(b[d]);
    } else if (is_q) {
      float* out = p.q_out + (r * hq + head) * hd;
      for (int d = lane; d < hd; d += 32) out[d] = b[d];
    } else {
      T* out = static_cast<T*>(p.k_out) + (r * hkv + bias_head) * hd;
      for (int d = lane; d < hd; d += 32) out[d] = FromFloat<T>(b[d]);
    }
    __syncwarp();
  }
  __syncthreads();
  if (threadIdx.x < hkv) {
    const int src = p.per_layer ? 0 : threadIdx.x;
    const int owner = p.mode == DecisionMode::kNeuron ? (src * g / kWarps) % gridDim.y : 0;
    if (owner != static_cast<int>(blockIdx.y)) return;
    const bool on = p.mode != DecisionMode::kNone && !p.decisions_off;
    p.decisions[r * hkv + threadIdx.x] = on ? dec[src] : 0;
    if (p.decision_logits) p.decision_logits[r * hkv + threadIdx.x] = dec_logit[src];
  }
}

// QkvEpilogueKernel's arithmetic in the same order, so a token gets the same
// bits in any step (a decode token batched with a prefill must match its
// solo step; both variants below do the same per head). HD is a multiple of 64:
// lane l holds elements l + 32 k of a head in registers, a RoPE pair (i,
// i + HD/2) then sits in one lane, and nothing goes through shared memory.
// A warp takes kHeadsPerWarp heads of one token with all their loads in
// flight at once (QkvEpilogueKernel, a warp per head with each head a chain
// of loads, shared-memory steps and barriers, is far from its bytes' time).
// Decode steps take kHeadsPerWarp = 1 (a warp per head: 48 warps for a
// Qwen3-8B token) and load what no kernel of the step writes before PdlWait:
// the position (uploaded before the step's first kernel), its RoPE row, the
// head's norm weight and bias; after it only the head's q;k;v values.
// grid: ceil(tokens * head groups / kRowsWarps), block: kRowsWarps warps.
constexpr int kRowsWarps = 8;

template <typename T, int HD, int kHeadsPerWarp>
__global__ void __launch_bounds__(kRowsWarps * 32) QkvEpilogueRowsKernel(QkvEpilogueParams p) {
  constexpr int kPer = HD / 32, kRot = kPer / 2;  // elements a lane holds; RoPE pairs
  constexpr bool kPreload = kHeadsPerWarp == 1;   // norm weight and bias before PdlWait
  const int lane = threadIdx.x & 31;
  const int hq = p.num_q_heads, hkv = p.num_kv_heads, g = hq / hkv, heads = hq + 2 * hkv;
  const int groups = (heads + kHeadsPerWarp - 1) / kHeadsPerWarp;
  const int64_t task = static_cast<int64_t>(blockIdx.x) * kRowsWarps + (threadIdx.x >> 5);
  const bool active = task < static_cast<int64_t>(p.num_tokens) * groups;
  const int64_t r = active ? task / groups : 0;
  const int head0 = static_cast<int>(task % groups) * kHeadsPerWarp;
  float cs[kRot], sn[kRot], wv[kPreload ? kPer : 1], bv[kPreload ? kPer : 1];
  if (active) {
    const int pos = p.positions[r];
#pragma unroll
    for (int k = 0; k < kRot; ++k) {
      cs[k] = p.rope_cos[static_cast<int64_t>(pos) * (HD / 2) + lane + 32 * k];
      sn[k] = p.rope_sin[static_cast<int64_t>(pos) * (HD / 2) + lane + 32 * k];
    }
    if constexpr (kPreload) {
      const bool is_q = head0 < hq, is_k = !is_q && head0 < hq + hkv;
      const int bias_head = is_q ? head0 : is_k ? head0 - hq : head0 - hq - hkv;
      const float* bias = is_q ? p.q_bias : is_k ? p.k_bias : p.v_bias;
      const float* w = is_q ? p.q_norm : is_k ? p.k_norm : nullptr;
#pragma unroll
      for (int k = 0; k < kPer; ++k) {
        bv[k] = bias ? bias[bias_head * HD + lane + 32 * k] : 0.0f;
        wv[k] = w ? w[lane + 32 * k] : 0.0f;
      }
    }
  }
  PdlWait();
  PdlLaunchDependents();
  if (!active) return;
  const float* row = p.qkv + r * heads * HD;

  float x[kHeadsPerWarp][kPer];
#pragma unroll
  for (int j = 0; j < kHeadsPerWarp; ++j) {
#pragma unroll
    for (int k = 0; k < kPer; ++k) {
      x[j][k] = head0 + j < heads ? row[(head0 + j) * HD + lane + 32 * k] : 0.0f;
    }
  }

#pragma unroll
  for (int j = 0; j < kHeadsPerWarp; ++j) {
    const int head = head0 + j;
    if (head >= heads) break;
    const bool is_q = head < hq, is_k = !is_q && head < hq + hkv;
    const int bias_head = is_q ? head : is_k ? head - hq : head - hq - hkv;
    const float* bias = is_q ? p.q_bias : is_k ? p.k_bias : p.v_bias;
    float* b = x[j];
    if (bias) {
#pragma unroll
      for (int k = 0; k < kPer; ++k) {
        b[k] += kPreload ? bv[k] : bias[bias_head * HD + lane + 32 * k];
      }
    }
    if (!is_q && !is_k) {
      T* out = static_cast<T*>(p.v_out) + (r * hkv + bias_head) * HD;
#pragma unroll
      for (int k = 0; k < kPer; ++k) out[lane + 32 * k] = FromFloat<T>(b[k]);
      continue;
    }
    // RMSNorm over the head (fp32), then the DMS decision element (lane 31
    // holds element HD - 1).
    const float* w = is_q ? p.q_norm : p.k_norm;
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < kPer; ++k) ss = __fmaf_rn(b[k], b[k], ss);
    ss = WarpSum(ss);
    const float inv = 1.0f / sqrtf(ss / HD + p.eps);
#pragma unroll
    for (int k = 0; k < kPer; ++k) b[k] = b[k] * inv * (kPreload ? wv[k] : w[lane + 32 * k]);
    const bool neuron_head = is_q && p.mode == DecisionMode::kNeuron && head % g == 0;
    float logit = 0.0f;
    if (neuron_head) {
      logit = __shfl_sync(0xffffffffu, __fsub_rn(__fmul_rn(b[kPer - 1], p.alpha_scale), p.alpha_offset), 31);
      if (lane == 31) b[kPer - 1] = 0.0f;
    }
    // RoPE, rotate-half: (a, b) at (i, i + HD/2) -> (a c - b s, b c + a s).
#pragma unroll
    for (int k = 0; k < kRot; ++k) {
      const float a = b[k], bb = b[k + kRot];
      b[k] = __fsub_rn(__fmul_rn(a, cs[k]), __fmul_rn(bb, sn[k]));
      b[k + kRot] = __fadd_rn(__fmul_rn(bb, cs[k]), __fmul_rn(a, sn[k]));
    }
    if (neuron_head && lane == 31) b[kPer - 1] = 0.0f;
    if (is_q && p.q_out_bf16) {
      __nv_bfloat16* out = p.q_out_bf16 + (r * hq + head) * HD;
#pragma unroll
      for (int k = 0; k < kPer; ++k) out[lane + 32 * k] = __float2bfloat16_rn(b[k]);
    } else if (is_q) {
      float* out = p.q_out + (r * hq + head) * HD;
#pragma unroll
      for (int k = 0; k < kPer; ++k) out[lane + 32 * k] = b[k];
    } else {
      T* out = static_cast<T*>(p.k_out) + (r * hkv + bias_head) * HD;
#pragma unroll
      for (int k = 0; k < kPer; ++k) out[lane + 32 * k] = FromFloat<T>(b[k]);
    }
    // The decisions this head is the source of (kNeuron: every KV head of
    // its group, or all of them per layer from head 0).
    if (neuron_head && (!p.per_layer || head == 0)) {
      const uint8_t d = !p.decisions_off && logit > 0.0f;
      const int first = p.per_layer ? 0 : head / g, last = p.per_layer ? hkv : head / g + 1;
      for (int h = first + lane; h < last; h += 32) {
        p.decisions[r * hkv + h] = d;
        if (p.decision_logits) p.decision_logits[r * hkv + h] = logit;
      }
    }
  }
  // Other modes: the prologue's value, written by the token's first warp.
  if (p.mode != DecisionMode::kNeuron && head0 == 0) {
    for (int h = lane; h < hkv; h += 32) {
      const int src = p.per_layer ? 0 : h;
      float logit = 0.0f;
      if (p.mode == DecisionMode::kProjection) {
        logit = __fsub_rn(__fmul_rn(p.alpha_logits[r * hkv + src], p.alpha_scale), p.alpha_offset);
      }
      const bool on = p.mode != DecisionMode::kNone && !p.decisions_off;
      p.decisions[r * hkv + h] = on ? static_cast<uint8_t>(logit > 0.0f) : 0;
      if (p.decision_logits) p.decision_logits[r * hkv + h] = logit;
    }
  }
}

// One block per token: the inverse RMS of x[r], then one warp per KV head.
__global__ void DmsAlphaKernel(const float* x, int dim, const float* norm_w,
                               const __nv_bfloat16* w, int hkv, float eps, float* out) {
  __shared__ float scratch[32];
  PdlEnter();
  const int64_t r = blockIdx.x;
  const float* xr = x + r * dim;
  float ss = 0.0f;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) ss += xr[d] * xr[d];
  ss = BlockSum(ss, scratch);
  const float inv = 1.0f / sqrtf(ss / dim + eps);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int h = warp; h < hkv; h += nw) {
    const __nv_bfloat16* wr = w + static_cast<int64_t>(h) * dim;
    float acc = 0.0f;
    for (int d = lane; d < dim; d += 32) acc += (xr[d] * inv * norm_w[d]) * __bfloat162float(wr[d]);
    acc = WarpSum(acc);
    if (lane == 0) out[r * hkv + h] = acc;
  }
}

}  // namespace

cudaError_t LaunchQkvEpilogue(const QkvEpilogueParams& p, cudaStream_t stream) {
  if (p.num_tokens <= 0) return cudaSuccess;
  if (p.head_dim > kMaxHeadDim || p.head_dim % 2 != 0 || p.num_kv_heads > kMaxKvHeads ||
      p.num_kv_heads <= 0 || p.num_q_heads % p.num_kv_heads != 0) {
    return cudaErrorInvalidValue;
  }
  const int heads = p.num_q_heads + 2 * p.num_kv_heads;
  const int hd = p.head_dim;
  if (hd == 64 || hd == 128 || hd == 256) {
    const bool decode = p.num_tokens <= kSplitTokens;  // a warp a head
    const int per_warp = decode ? 1 : 4;
    const int64_t tasks = static_cast<int64_t>(p.num_tokens) * ((heads + per_warp - 1) / per_warp);
    const unsigned grid = static_cast<unsigned>((tasks + kRowsWarps - 1) / kRowsWarps);
    auto launch = [&](auto kernel) {
      return LaunchKernel(LaunchGroup::kEpilogue, kernel, grid, kRowsWarps * 32, 0, stream, p);
    };
    const bool bf16 = p.kv_dtype == KvDType::kBF16;
    auto pick = [&](auto hd_tag) {
      constexpr int kHd = decltype(hd_tag)::value;
      if (decode) {
        return launch(bf16 ? QkvEpilogueRowsKernel<__nv_bfloat16, kHd, 1> : QkvEpilogueRowsKernel<float, kHd, 1>);
      }
      return launch(bf16 ? QkvEpilogueRowsKernel<__nv_bfloat16, kHd, 4> : QkvEpilogueRowsKernel<float, kHd, 4>);
    };
    if (hd == 64) return pick(std::integral_constant<int, 64>{});
    if (hd == 128) return pick(std::integral_constant<int, 128>{});
    return pick(std::integral_constant<int, 256>{});
  }
  // Few tokens: a warp per head over several blocks; many: a block a token.
  const int splits = p.num_tokens <= kSplitTokens ? (heads + kWarps - 1) / kWarps : 1;
  const dim3 grid(p.num_tokens, splits);
  if (p.kv_dtype == KvDType::kBF16) {
    return LaunchKernel(LaunchGroup::kEpilogue, QkvEpilogueKernel<__nv_bfloat16>, grid, kWarps * 32,
                        0, stream, p);
  }
  return LaunchKernel(LaunchGroup::kEpilogue, QkvEpilogueKernel<float>, grid, kWarps * 32, 0,
                      stream, p);
}

cudaError_t LaunchDmsAlphaLogits(const float* x, int rows, int dim, const float* norm_w,
                                 const __nv_bfloat16* w, int num_kv_heads, float eps, float* out,
                                 cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  return LaunchKernel(LaunchGroup::kEpilogue, DmsAlphaKernel, rows, 256, 0, stream, x, dim, norm_w,
                      w, num_kv_heads, eps, out);
}

}  // namespace dms::cuda
