#include "kernels/elementwise.h"

#include "kernels/device_util.cuh"

namespace dms::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void EmbeddingGatherKernel(const int32_t* tokens, const __nv_bfloat16* table, int dim,
                                      float* x) {
  const int64_t r = blockIdx.x;
  const __nv_bfloat16* src = table + static_cast<int64_t>(tokens[r]) * dim;
  float* dst = x + r * dim;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) dst[d] = __bfloat162float(src[d]);
}

// One block per output row.
__global__ void RmsNormKernel(const float* x, const float* delta, const float* bias, float* x_out,
                              const int32_t* row_map, int dim, const float* weight, float eps,
                              GemmInput out) {
  __shared__ float scratch[32];
  const int64_t r = blockIdx.x;
  const int64_t s = row_map ? row_map[r] : r;
  const float* xs = x + s * dim;
  const float* ds = delta ? delta + s * dim : nullptr;
  float* xo = x_out ? x_out + s * dim : nullptr;
  float ss = 0.0f;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    float v = xs[d];
    if (ds) v += ds[d];
    if (bias) v += bias[d];
    if (xo) xo[d] = v;  // same thread re-reads it below
    ss += v * v;
  }
  ss = BlockSum(ss, scratch);
  const float inv = 1.0f / sqrtf(ss / dim + eps);
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    float v;
    if (xo) {
      v = xo[d];
    } else {
      v = xs[d];
      if (ds) v += ds[d];
      if (bias) v += bias[d];
    }
    StoreGemmInput(out, r * dim + d, v * inv * weight[d]);
  }
}

__global__ void SwiGluKernel(const float* gate_up, int64_t rows, int inter, GemmInput out) {
  const int64_t n = rows * inter;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / inter, c = i % inter;
    const float g = gate_up[r * 2 * inter + c];
    const float u = gate_up[r * 2 * inter + inter + c];
    StoreGemmInput(out, i, g / (1.0f + expf(-g)) * u);
  }
}

__global__ void ToGemmInputKernel(const float* x, int64_t n, GemmInput out) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    StoreGemmInput(out, i, x[i]);
  }
}

int GridFor(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

}  // namespace

cudaError_t LaunchEmbeddingGather(const int32_t* tokens, int rows, const __nv_bfloat16* table,
                                  int dim, float* x, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  EmbeddingGatherKernel<<<rows, kThreads, 0, stream>>>(tokens, table, dim, x);
  return cudaGetLastError();
}

cudaError_t LaunchRmsNorm(const float* x, const float* delta, const float* bias, float* x_out,
                          const int32_t* row_map, int rows, int dim, const float* weight,
                          float eps, GemmInput out, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  // Few rows (decode): one wide block per row, its two passes are latency.
  const int threads = rows <= 64 ? 1024 : kThreads;
  RmsNormKernel<<<rows, threads, 0, stream>>>(x, delta, bias, x_out, row_map, dim, weight, eps,
                                              out);
  return cudaGetLastError();
}

cudaError_t LaunchSwiGlu(const float* gate_up, int rows, int inter, GemmInput out,
                         cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(rows) * inter;
  if (n <= 0) return cudaSuccess;
  SwiGluKernel<<<GridFor(n), kThreads, 0, stream>>>(gate_up, rows, inter, out);
  return cudaGetLastError();
}

cudaError_t LaunchToGemmInput(const float* x, int64_t n, GemmInput out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  ToGemmInputKernel<<<GridFor(n), kThreads, 0, stream>>>(x, n, out);
  return cudaGetLastError();
}

}  // namespace dms::cuda
