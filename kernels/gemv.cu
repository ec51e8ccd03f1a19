#include "kernels/gemv.h"

#include "kernels/device_util.cuh"

namespace dms::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 2;  // each x vector load serves two weight rows
constexpr int kUnroll = 4;       // 16-byte weight loads in flight per row and lane

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

// grid: ceil(n / (kWarps * kRowsPerWarp)), block: kWarps * 32. Warp w of
// block b computes rows n0 .. n0 + kRowsPerWarp - 1 of y for all M inputs;
// lane l takes the 16-byte columns l, l + 32, ...
template <int M, bool kLo>
__global__ void __launch_bounds__(kWarps * 32) GemvKernel(const __nv_bfloat16* __restrict__ xh,
                                                         const __nv_bfloat16* __restrict__ xl,
                                                         int k, const __nv_bfloat16* __restrict__ w,
                                                         int n, float* __restrict__ y) {
  constexpr int R = kRowsPerWarp;
  const int lane = threadIdx.x & 31;
  const int n0 = (blockIdx.x * kWarps + (threadIdx.x >> 5)) * R;
  if (n0 >= n) return;
  const int kv = k / 8;
  const uint4* wr[R];
#pragma unroll
  for (int r = 0; r < R; ++r) {
    wr[r] = reinterpret_cast<const uint4*>(w + static_cast<int64_t>(min(n0 + r, n - 1)) * k);
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

  int i = lane;
  for (; i + 32 * (kUnroll - 1) < kv; i += 32 * kUnroll) {
    uint4 wv[kUnroll][R];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int r = 0; r < R; ++r) wv[u][r] = LoadStream(wr[r] + i + 32 * u);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) step(wv[u], i + 32 * u);
  }
  for (; i < kv; i += 32) {
    uint4 wv[R];
#pragma unroll
    for (int r = 0; r < R; ++r) wv[r] = LoadStream(wr[r] + i);
    step(wv, i);
  }
#pragma unroll
  for (int mm = 0; mm < M; ++mm) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const float v = WarpSum(acc[mm][r]);
      if (lane == mm * R + r && n0 + r < n) y[static_cast<int64_t>(mm) * n + n0 + r] = v;
    }
  }
}

template <int M>
cudaError_t LaunchM(const GemmInput& x, int k, const __nv_bfloat16* w, int n, float* y,
                    cudaStream_t stream) {
  const int per_block = kWarps * kRowsPerWarp;
  const unsigned grid = static_cast<unsigned>((n + per_block - 1) / per_block);
  if (x.lo) {
    GemvKernel<M, true><<<grid, kWarps * 32, 0, stream>>>(x.hi, x.lo, k, w, n, y);
  } else {
    GemvKernel<M, false><<<grid, kWarps * 32, 0, stream>>>(x.hi, nullptr, k, w, n, y);
  }
  return cudaGetLastError();
}

bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

}  // namespace

bool GemvSupported(const GemmInput& x, int m, int k, const __nv_bfloat16* w) {
  return m >= 1 && m <= kGemvMaxRows && k > 0 && k % 8 == 0 && Aligned16(w) && Aligned16(x.hi) &&
         (!x.lo || Aligned16(x.lo));
}

cudaError_t LaunchGemv(const GemmInput& x, int m, int k, const __nv_bfloat16* w, int n, float* y,
                       cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (!GemvSupported(x, m, k, w)) return cudaErrorInvalidValue;
  switch (m) {
    case 1: return LaunchM<1>(x, k, w, n, y, stream);
    case 2: return LaunchM<2>(x, k, w, n, y, stream);
    case 3: return LaunchM<3>(x, k, w, n, y, stream);
    default: return LaunchM<4>(x, k, w, n, y, stream);
  }
}

}  // namespace dms::cuda
