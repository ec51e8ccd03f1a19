#include "kernels/gemv.h"

#include "kernels/device_util.cuh"
#include "kernels/launch.cuh"

namespace dms::cuda {
namespace {

// A block of 4 warps owns 4 weight rows and splits k over its 128 threads,
// so a 4096-wide row is one round of loads per thread (4 x 16 bytes per
// row, 16 in flight); the warps' partial sums meet in shared memory.
constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kWeightRows = 4;
static_assert(kGemvColumnsPerPartial == kWeightRows, "a producer block's columns make one partial");
constexpr int kUnroll = 4;  // 16-byte loads in flight per weight row and thread

// Streaming 16-byte weight load: read once per step, keep it out of L1.
__device__ __forceinline__ uint4 LoadStream(const uint4* p) {
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
               : "l"(p));
  return v;
}

__device__ __forceinline__ void Unpack8(const uint4& v, float (&f)[8]) {
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const float2 t = __bfloat1622float2(h[i]);
    f[2 * i] = t.x;
    f[2 * i + 1] = t.y;
  }
}

// What a GEMV does around its dot products (gemv.h, RmsNormFold).
enum class Fold { kNone, kScale /* consumer: x inv */, kResidual /* producer */ };

// Everything a fold needs, one struct for both sides.
struct FoldParams {
  RmsNormFold out;   // kResidual
  RmsNormScale in;   // kScale
};

// The bf16 batch-1 kernels are held to 64 registers, 8 blocks an SM. At
// their natural ~110 (4 blocks an SM) o_proj and down_proj, 1,024 blocks
// each, ran in two waves, and the folds' extra registers cost one block an
// SM more (decode 6% slower than without the fold; 6% faster with this).
// A few bytes spill.
template <int M, bool kLo>
constexpr int kMinBlocks = M == 1 && !kLo ? 8 : 1;

// grid: one block per kOut output columns. Plain: weight rows o0 .. o0+3
// give y columns o0 .. o0+3. kSwiGlu: weight rows o0, o0+1 (gate) and
// inter+o0, inter+o0+1 (up) give out columns o0, o0+1.
template <int M, bool kLo, bool kSwiGlu, Fold kFold>
__global__ void __launch_bounds__(kThreads, kMinBlocks<M, kLo>)
    GemvKernel(const __nv_bfloat16* __restrict__ xh, const __nv_bfloat16* __restrict__ xl, int k,
               const __nv_bfloat16* __restrict__ w, int n_out, float* __restrict__ y,
               GemmInput act, FoldParams fold) {
  constexpr int R = kWeightRows;
  constexpr int kOut = kSwiGlu ? R / 2 : R;
  // kScale: M more sums, the rows' sums of squares.
  constexpr int kSums = M * R + (kFold == Fold::kScale ? M : 0);
  __shared__ float red[kWarps][kSums];
  __shared__ float tot[kSums];
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int o0 = blockIdx.x * kOut;
  const int kv = k / 8;
  const uint4* wr[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const int o = min(o0 + (kSwiGlu ? r % kOut : r), n_out - 1);
    const int row = kSwiGlu && r >= kOut ? n_out + o : o;  // up rows follow the gate rows
    wr[r] = reinterpret_cast<const uint4*>(w + static_cast<int64_t>(row) * k);
  }
  float acc[M][R];
#pragma unroll
  for (int mm = 0; mm < M; ++mm)
#pragma unroll
    for (int r = 0; r < R; ++r) acc[mm][r] = 0.0f;
  // kScale: each row's partial sums of squares, k / 16 float4 a row. The
  // first kPartialVecs per thread are loaded right after PdlWait and summed
  // after the dot products, so their latency hides behind the weight stream
  // instead of standing as a chain of dependent L2 loads at the start of
  // every block.
  // Thread t sums float4s t, t + 128, ... in that order, each as
  // (x + y) + (z + w): a fixed order for every m.
  constexpr int kPartialVecs = kFold == Fold::kScale ? 2 : 0;
  const int nv = k / (4 * kGemvColumnsPerPartial);
  const float4* p4 = reinterpret_cast<const float4*>(fold.in.partials);
  float4 pv[M][kPartialVecs > 0 ? kPartialVecs : 1];
  // kResidual: warp 0's lanes below M * kOut own a column of a row; its
  // norm weight and bias are loaded before PdlWait, its residual right after.
  const int fold_i = static_cast<int>(lane / kOut) * n_out + o0 + lane % kOut;
  const bool fold_lane = kFold == Fold::kResidual && warp == 0 && lane < M * kOut;
  float fold_g = 0.0f, fold_b = 0.0f, fold_res = 0.0f;
  if (fold_lane) {
    fold_g = fold.out.weight[o0 + lane % kOut];
    if (fold.out.bias) fold_b = fold.out.bias[o0 + lane % kOut];
  }
  auto load_partials = [&]() {
    if (fold_lane) fold_res = fold.out.residual[fold_i];
    if constexpr (kFold == Fold::kScale) {
#pragma unroll
      for (int u = 0; u < kPartialVecs; ++u)
#pragma unroll
        for (int mm = 0; mm < M; ++mm) {
          const int j = tid + u * kThreads;
          // __ldg: through L1, which the SM's blocks share (all read the same).
          pv[mm][u] = j < nv ? __ldg(p4 + mm * nv + j) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
    }
  };

  auto step = [&](const uint4 (&wv)[R], int i) {
    float wf[R][8];
#pragma unroll
    for (int r = 0; r < R; ++r) Unpack8(wv[r], wf[r]);
#pragma unroll
    for (int mm = 0; mm < M; ++mm) {
      float xf[8];
      Unpack8(__ldg(reinterpret_cast<const uint4*>(xh + static_cast<int64_t>(mm) * k) + i), xf);
      if (kLo) {
        float lf[8];
        Unpack8(__ldg(reinterpret_cast<const uint4*>(xl + static_cast<int64_t>(mm) * k) + i), lf);
#pragma unroll
        for (int e = 0; e < 8; ++e) xf[e] += lf[e];
      }
#pragma unroll
      for (int r = 0; r < R; ++r)
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[mm][r] = fmaf(wf[r][e], xf[e], acc[mm][r]);
    }
  };

  // The first round of weight loads goes out before PdlWait: the weights are
  // no kernel's output, so they stream while the kernel before (a norm, a
  // GEMV) still runs (kernels/launch.cuh). x is read only after it.
  PdlLaunchDependents();
  int i = tid;
  if (i + kThreads * (kUnroll - 1) < kv) {
    uint4 wv[kUnroll][R];
    auto load = [&](int at) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
#pragma unroll
        for (int r = 0; r < R; ++r) wv[u][r] = LoadStream(wr[r] + at + kThreads * u);
    };
    load(i);
    PdlWait();
    load_partials();
    while (true) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) step(wv[u], i + kThreads * u);
      i += kThreads * kUnroll;
      if (i + kThreads * (kUnroll - 1) >= kv) break;
      load(i);
    }
  } else {
    PdlWait();
    load_partials();
  }
  for (; i < kv; i += kThreads) {
    uint4 wv[R];
#pragma unroll
    for (int r = 0; r < R; ++r) wv[r] = LoadStream(wr[r] + i);
    step(wv, i);
  }
#pragma unroll
  for (int mm = 0; mm < M; ++mm)
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float v = WarpSum(acc[mm][r]);
      if (lane == 0) red[warp][mm * R + r] = v;
    }
  if constexpr (kFold == Fold::kScale) {
#pragma unroll
    for (int mm = 0; mm < M; ++mm) {
      float ss = 0.0f;
#pragma unroll
      for (int u = 0; u < kPartialVecs; ++u) {
        const float4 q = pv[mm][u];
        ss += (q.x + q.y) + (q.z + q.w);
      }
      for (int j = tid + kPartialVecs * kThreads; j < nv; j += kThreads) {  // k > 4096
        const float4 q = __ldg(p4 + mm * nv + j);
        ss += (q.x + q.y) + (q.z + q.w);
      }
      const float v = WarpSum(ss);
      if (lane == 0) red[warp][M * R + mm] = v;
    }
  }
  __syncthreads();
  if (tid < kSums) {
    float v = 0.0f;
#pragma unroll
    for (int wp = 0; wp < kWarps; ++wp) v += red[wp][tid];
    tot[tid] = v;
  }
  __syncthreads();
  if constexpr (kFold == Fold::kResidual) {
    // h = residual + y (+ bias) back into the residual, h * weight as the
    // next GEMM input, and this block's sum of h^2 (n_out % kOut == 0, so
    // every lane below M * kOut has a column; the 4 lanes of a row sum as
    // (0 + 1) + (2 + 3) in every lane).
    if (warp == 0) {
      const int mm = lane / kOut, r = lane % kOut;
      float sq = 0.0f;
      if (fold_lane) {
        float h = fold_res + tot[mm * R + r];
        if (fold.out.bias) h += fold_b;
        fold.out.residual[fold_i] = h;
        // __fmul_rn: no FMA contraction, the same bits as the CPU.
        StoreGemmInput(fold.out.normed, fold_i, __fmul_rn(h, fold_g));
        sq = __fmul_rn(h, h);
      }
      static_assert(kOut == 4, "the shuffles sum 4 lanes");
      sq += __shfl_xor_sync(0xffffffffu, sq, 1);
      sq += __shfl_xor_sync(0xffffffffu, sq, 2);
      if (lane < M * kOut && r == 0) fold.out.partials[mm * gridDim.x + blockIdx.x] = sq;
    }
    return;
  }
  if (tid < M * kOut) {
    const int mm = tid / kOut, r = tid % kOut, o = o0 + r;
    // kScale: the norm's 1 / rms, the same expression as the RMSNorm kernel.
    const float inv = kFold == Fold::kScale ? 1.0f / sqrtf(tot[M * R + mm] / k + fold.in.eps) : 1.0f;
    if (o < n_out) {
      if (kSwiGlu) {
        const float g = tot[mm * R + r] * inv, u = tot[mm * R + kOut + r] * inv;
        StoreGemmInput(act, static_cast<int64_t>(mm) * n_out + o, g / (1.0f + expf(-g)) * u);
      } else {
        y[static_cast<int64_t>(mm) * n_out + o] = tot[mm * R + r] * inv;
      }
    }
  }
}

template <int M, bool kSwiGlu, Fold kFold>
cudaError_t LaunchM(const GemmInput& x, int k, const __nv_bfloat16* w, int n_out, float* y,
                    GemmInput act, const FoldParams& fold, cudaStream_t stream) {
  constexpr int kOut = kSwiGlu ? kWeightRows / 2 : kWeightRows;
  const unsigned grid = static_cast<unsigned>((n_out + kOut - 1) / kOut);
  if (x.lo) {
    return LaunchKernel(LaunchGroup::kGemv, GemvKernel<M, true, kSwiGlu, kFold>, grid, kThreads, 0,
                        stream, x.hi, x.lo, k, w, n_out, y, act, fold);
  }
  return LaunchKernel(LaunchGroup::kGemv, GemvKernel<M, false, kSwiGlu, kFold>, grid, kThreads, 0,
                      stream, x.hi, nullptr, k, w, n_out, y, act, fold);
}

template <bool kSwiGlu, Fold kFold>
cudaError_t Dispatch(const GemmInput& x, int m, int k, const __nv_bfloat16* w, int n_out, float* y,
                     GemmInput act, const FoldParams& fold, cudaStream_t stream) {
  switch (m) {
    case 1: return LaunchM<1, kSwiGlu, kFold>(x, k, w, n_out, y, act, fold, stream);
    case 2: return LaunchM<2, kSwiGlu, kFold>(x, k, w, n_out, y, act, fold, stream);
    case 3: return LaunchM<3, kSwiGlu, kFold>(x, k, w, n_out, y, act, fold, stream);
    default: return LaunchM<4, kSwiGlu, kFold>(x, k, w, n_out, y, act, fold, stream);
  }
}

bool ScaleSupported(const RmsNormScale* scale, int k) {
  return scale == nullptr ||
         (scale->partials != nullptr && k % (4 * kGemvColumnsPerPartial) == 0 &&
          Aligned16(scale->partials));
}

}  // namespace

bool GemvSupported(const GemmInput& x, int m, int k, const __nv_bfloat16* w) {
  return m >= 1 && m <= kGemvMaxRows && k > 0 && k % 8 == 0 && Aligned16(w) && Aligned16(x.hi) &&
         (!x.lo || Aligned16(x.lo));
}

cudaError_t LaunchGemv(const GemmInput& x, int m, int k, const __nv_bfloat16* w, int n, float* y,
                       cudaStream_t stream, const RmsNormScale* scale) {
  if (n <= 0) return cudaSuccess;
  if (!GemvSupported(x, m, k, w) || !ScaleSupported(scale, k)) return cudaErrorInvalidValue;
  if (scale) return Dispatch<false, Fold::kScale>(x, m, k, w, n, y, GemmInput{}, {{}, *scale}, stream);
  return Dispatch<false, Fold::kNone>(x, m, k, w, n, y, GemmInput{}, {}, stream);
}

cudaError_t LaunchGemvSwiGlu(const GemmInput& x, int m, int k, const __nv_bfloat16* w, int inter,
                             GemmInput out, cudaStream_t stream, const RmsNormScale* scale) {
  if (inter <= 0) return cudaSuccess;
  if (!GemvSupported(x, m, k, w) || !out.hi || !ScaleSupported(scale, k)) {
    return cudaErrorInvalidValue;
  }
  if (scale) return Dispatch<true, Fold::kScale>(x, m, k, w, inter, nullptr, out, {{}, *scale}, stream);
  return Dispatch<true, Fold::kNone>(x, m, k, w, inter, nullptr, out, {}, stream);
}

cudaError_t LaunchGemvResidualNorm(const GemmInput& x, int m, int k, const __nv_bfloat16* w, int n,
                                   const RmsNormFold& fold, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (!GemvSupported(x, m, k, w) || n % kWeightRows != 0 || !fold.residual || !fold.weight ||
      !fold.normed.hi || !fold.partials) {
    return cudaErrorInvalidValue;
  }
  return Dispatch<false, Fold::kResidual>(x, m, k, w, n, nullptr, GemmInput{}, {fold, {}}, stream);
}

}  // namespace dms::cuda
