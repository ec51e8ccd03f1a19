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

// grid: one block per kOut output columns. Plain: weight rows o0 .. o0+3
// give y columns o0 .. o0+3. kSwiGlu: weight rows o0, o0+1 (gate) and
// inter+o0, inter+o0+1 (up) give out columns o0, o0+1.
template <int M, bool kLo, bool kSwiGlu>
__global__ void __launch_bounds__(kThreads) GemvKernel(const __nv_bfloat16* __restrict__ xh,
                                                     const __nv_bfloat16* __restrict__ xl, int k,
                                                     const __nv_bfloat16* __restrict__ w,
                                                     int n_out, float* __restrict__ y,
                                                     GemmInput act) {
  constexpr int R = kWeightRows;
  constexpr int kOut = kSwiGlu ? R / 2 : R;
  __shared__ float red[kWarps][M * R];
  __shared__ float tot[M * R];
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
    while (true) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) step(wv[u], i + kThreads * u);
      i += kThreads * kUnroll;
      if (i + kThreads * (kUnroll - 1) >= kv) break;
      load(i);
    }
  } else {
    PdlWait();
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
  __syncthreads();
  if (tid < M * R) {
    float v = 0.0f;
#pragma unroll
    for (int wp = 0; wp < kWarps; ++wp) v += red[wp][tid];
    tot[tid] = v;
  }
  __syncthreads();
  if (tid < M * kOut) {
    const int mm = tid / kOut, r = tid % kOut, o = o0 + r;
    if (o < n_out) {
      if (kSwiGlu) {
        const float g = tot[mm * R + r], u = tot[mm * R + kOut + r];
        StoreGemmInput(act, static_cast<int64_t>(mm) * n_out + o, g / (1.0f + expf(-g)) * u);
      } else {
        y[static_cast<int64_t>(mm) * n_out + o] = tot[mm * R + r];
      }
    }
  }
}

template <int M, bool kSwiGlu>
cudaError_t LaunchM(const GemmInput& x, int k, const __nv_bfloat16* w, int n_out, float* y,
                    GemmInput act, cudaStream_t stream) {
  constexpr int kOut = kSwiGlu ? kWeightRows / 2 : kWeightRows;
  const unsigned grid = static_cast<unsigned>((n_out + kOut - 1) / kOut);
  if (x.lo) {
    return LaunchKernel(LaunchGroup::kGemv, GemvKernel<M, true, kSwiGlu>, grid, kThreads, 0, stream,
                        x.hi, x.lo, k, w, n_out, y, act);
  }
  return LaunchKernel(LaunchGroup::kGemv, GemvKernel<M, false, kSwiGlu>, grid, kThreads, 0, stream,
                      x.hi, nullptr, k, w, n_out, y, act);
}

template <bool kSwiGlu>
cudaError_t Dispatch(const GemmInput& x, int m, int k, const __nv_bfloat16* w, int n_out, float* y,
                     GemmInput act, cudaStream_t stream) {
  switch (m) {
    case 1: return LaunchM<1, kSwiGlu>(x, k, w, n_out, y, act, stream);
    case 2: return LaunchM<2, kSwiGlu>(x, k, w, n_out, y, act, stream);
    case 3: return LaunchM<3, kSwiGlu>(x, k, w, n_out, y, act, stream);
    default: return LaunchM<4, kSwiGlu>(x, k, w, n_out, y, act, stream);
  }
}

}  // namespace

bool GemvSupported(const GemmInput& x, int m, int k, const __nv_bfloat16* w) {
  return m >= 1 && m <= kGemvMaxRows && k > 0 && k % 8 == 0 && Aligned16(w) && Aligned16(x.hi) &&
         (!x.lo || Aligned16(x.lo));
}

cudaError_t LaunchGemv(const GemmInput& x, int m, int k, const __nv_bfloat16* w, int n, float* y,
                       cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (!GemvSupported(x, m, k, w)) return cudaErrorInvalidValue;
  return Dispatch<false>(x, m, k, w, n, y, GemmInput{}, stream);
}

cudaError_t LaunchGemvSwiGlu(const GemmInput& x, int m, int k, const __nv_bfloat16* w, int inter,
                             GemmInput out, cudaStream_t stream) {
  if (inter <= 0) return cudaSuccess;
  if (!GemvSupported(x, m, k, w) || !out.hi) return cudaErrorInvalidValue;
  return Dispatch<true>(x, m, k, w, inter, nullptr, out, stream);
}

}  // namespace dms::cuda
