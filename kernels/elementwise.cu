#include "kernels/elementwise.h"

#include "kernels/device_util.cuh"
#include "kernels/launch.cuh"

namespace dms::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void EmbeddingGatherKernel(const int32_t* tokens, const __nv_bfloat16* table, int dim,
                                      float* x) {
  PdlEnter();
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
  PdlEnter();
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

// The row held in registers, 16-byte loads, kVec float4 per thread in
// flight: one read of x/delta/bias and one write. RmsNormKernel (the
// fallback for odd widths) re-reads its row in a second pass and chains one
// scalar load after the other (x_out may alias x).
constexpr int kNormVec = 4;
constexpr int kNormMaxThreads = 1024;

__device__ __forceinline__ void Add4(float4& a, const float4& b) {
  a.x += b.x;
  a.y += b.y;
  a.z += b.z;
  a.w += b.w;
}

// grid: rows; block: a multiple of 32 covering dim4 / kNormVec.
__global__ void RmsNormRowKernel(const float4* x, const float4* delta, const float4* bias,
                                 float4* x_out, const int32_t* row_map, int dim4,
                                 const float4* weight, float eps, GemmInput out) {
  __shared__ float scratch[32];
  PdlEnter();
  const int64_t r = blockIdx.x;
  const int64_t s = row_map ? row_map[r] : r;
  float4 v[kNormVec], wv[kNormVec];
  float ss = 0.0f;
#pragma unroll
  for (int u = 0; u < kNormVec; ++u) {
    const int i = threadIdx.x + u * blockDim.x;
    if (i >= dim4) continue;
    wv[u] = weight[i];  // loaded with the row, not after the reduction
    float4 a = x[s * dim4 + i];
    if (delta) Add4(a, delta[s * dim4 + i]);
    if (bias) Add4(a, bias[i]);
    v[u] = a;
    ss += a.x * a.x + a.y * a.y + a.z * a.z + a.w * a.w;
  }
  ss = BlockSum(ss, scratch);  // its barrier also orders every read before the x_out writes
  const float inv = 1.0f / sqrtf(ss / (4 * dim4) + eps);
#pragma unroll
  for (int u = 0; u < kNormVec; ++u) {
    const int i = threadIdx.x + u * blockDim.x;
    if (i >= dim4) continue;
    if (x_out) x_out[s * dim4 + i] = v[u];
    const float4 w = wv[u];
    const int64_t o = (r * dim4 + i) * 4;
    const float y[4] = {v[u].x * inv * w.x, v[u].y * inv * w.y, v[u].z * inv * w.z,
                        v[u].w * inv * w.w};
    StoreGemmInput4(out, o, y);
  }
}

// silu(g) * u: the one expression every SwiGLU kernel here uses (same bits).
__device__ __forceinline__ float SiluMul(float g, float u) { return g / (1.0f + expf(-g)) * u; }

// Any width, gate;up as f32 or bf16.
template <typename T>
__global__ void SwiGluKernel(const T* gate_up, int64_t rows, int inter, GemmInput out) {
  PdlEnter();
  const int64_t n = rows * inter;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / inter, c = i % inter;
    const float g = ToFloat(gate_up[r * 2 * inter + c]);
    const float u = ToFloat(gate_up[r * 2 * inter + inter + c]);
    StoreGemmInput(out, i, SiluMul(g, u));
  }
}

// Rows of a width divisible by 4: a 2-D grid (column quads x rows), so no
// 64-bit division per element; 16-byte loads of gate and up, 8-byte stores
// of 4 bf16 (the kernel above, for other widths, divides i by inter for
// every element and moves 4- and 2-byte words).
__global__ void SwiGluVecKernel(const float4* gate_up, int inter4, GemmInput out) {
  PdlEnter();
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= inter4) return;
  const int64_t r = blockIdx.y;
  const float4 g = gate_up[r * 2 * inter4 + c];
  const float4 u = gate_up[r * 2 * inter4 + inter4 + c];
  const float y[4] = {SiluMul(g.x, u.x), SiluMul(g.y, u.y), SiluMul(g.z, u.z), SiluMul(g.w, u.w)};
  StoreGemmInput4(out, (r * inter4 + c) * 4, y);
}

// bf16 gate;up (width divisible by 8): 16-byte loads of 8 gate and 8 up
// values, the f32 kernels' expression on them.
__global__ void SwiGluBf16VecKernel(const uint4* gate_up, int inter8, GemmInput out) {
  PdlEnter();
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= inter8) return;
  const int64_t r = blockIdx.y;
  const uint4 gv = gate_up[r * 2 * inter8 + c], uv = gate_up[r * 2 * inter8 + inter8 + c];
  const __nv_bfloat162* g2 = reinterpret_cast<const __nv_bfloat162*>(&gv);
  const __nv_bfloat162* u2 = reinterpret_cast<const __nv_bfloat162*>(&uv);
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    float y[4];
#pragma unroll
    for (int j = 0; j < 2; ++j) {
      const float2 g = __bfloat1622float2(g2[2 * half + j]), u = __bfloat1622float2(u2[2 * half + j]);
      y[2 * j] = SiluMul(g.x, u.x);
      y[2 * j + 1] = SiluMul(g.y, u.y);
    }
    StoreGemmInput4(out, (r * inter8 + c) * 8 + 4 * half, y);
  }
}

__global__ void ToGemmInputKernel(const float* x, int64_t n, GemmInput out) {
  PdlEnter();
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
  return LaunchKernel(LaunchGroup::kElementwise, EmbeddingGatherKernel, rows, kThreads, 0, stream,
                      tokens, table, dim, x);
}

cudaError_t LaunchRmsNorm(const float* x, const float* delta, const float* bias, float* x_out,
                          const int32_t* row_map, int rows, int dim, const float* weight,
                          float eps, GemmInput out, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  const int dim4 = dim / 4;
  if (dim % 4 == 0 && dim4 <= kNormVec * kNormMaxThreads && Aligned16(x) && Aligned16(delta) &&
      Aligned16(bias) && Aligned16(x_out) && Aligned16(weight) && Aligned8(out.hi) &&
      Aligned8(out.lo)) {
    // Threads from the width alone: every batch size reduces a row in the same order.
    const int threads = ((dim4 + kNormVec - 1) / kNormVec + 31) / 32 * 32;
    return LaunchKernel(LaunchGroup::kNorm, RmsNormRowKernel, rows, threads, 0, stream,
                        reinterpret_cast<const float4*>(x), reinterpret_cast<const float4*>(delta),
                        reinterpret_cast<const float4*>(bias), reinterpret_cast<float4*>(x_out),
                        row_map, dim4, reinterpret_cast<const float4*>(weight), eps, out);
  }
  // Few rows (decode): one wide block per row, its two passes are latency.
  const int threads = rows <= 64 ? 1024 : kThreads;
  return LaunchKernel(LaunchGroup::kNorm, RmsNormKernel, rows, threads, 0, stream, x, delta, bias,
                      x_out, row_map, dim, weight, eps, out);
}

cudaError_t LaunchSwiGlu(const float* gate_up, int rows, int inter, GemmInput out,
                         cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(rows) * inter;
  if (n <= 0) return cudaSuccess;
  if (inter % 4 == 0 && rows <= 65535 && Aligned16(gate_up) && Aligned8(out.hi) &&
      Aligned8(out.lo)) {
    const int inter4 = inter / 4;
    const dim3 grid((inter4 + kThreads - 1) / kThreads, rows);
    return LaunchKernel(LaunchGroup::kElementwise, SwiGluVecKernel, grid, kThreads, 0, stream,
                        reinterpret_cast<const float4*>(gate_up), inter4, out);
  }
  return LaunchKernel(LaunchGroup::kElementwise, SwiGluKernel<float>, GridFor(n), kThreads, 0, stream,
                      gate_up, static_cast<int64_t>(rows), inter, out);
}

cudaError_t LaunchSwiGlu(const __nv_bfloat16* gate_up, int rows, int inter, GemmInput out,
                         cudaStream_t stream) {
  const int64_t n = static_cast<int64_t>(rows) * inter;
  if (n <= 0) return cudaSuccess;
  if (inter % 8 == 0 && rows <= 65535 && Aligned16(gate_up) && Aligned8(out.hi) &&
      Aligned8(out.lo)) {
    const int inter8 = inter / 8;
    const dim3 grid((inter8 + kThreads - 1) / kThreads, rows);
    return LaunchKernel(LaunchGroup::kElementwise, SwiGluBf16VecKernel, grid, kThreads, 0, stream,
                        reinterpret_cast<const uint4*>(gate_up), inter8, out);
  }
  return LaunchKernel(LaunchGroup::kElementwise, SwiGluKernel<__nv_bfloat16>, GridFor(n), kThreads, 0, stream,
                      gate_up, static_cast<int64_t>(rows), inter, out);
}

cudaError_t LaunchToGemmInput(const float* x, int64_t n, GemmInput out, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  return LaunchKernel(LaunchGroup::kElementwise, ToGemmInputKernel, GridFor(n), kThreads, 0, stream,
                      x, n, out);
}

namespace {

// One block: row i is copied only after rows 0..i-1 are (a barrier a row),
// so a later destination is never read after it was written.
__global__ void __launch_bounds__(kThreads) GatherRowsToFrontKernel(uint4* data, int64_t row_vecs,
                                                                     const int32_t* rows, int count) {
  PdlEnter();
  for (int i = 0; i < count; ++i) {
    const int64_t src = rows[i];
    if (src != i) {
      for (int64_t k = threadIdx.x; k < row_vecs; k += blockDim.x) {
        data[i * row_vecs + k] = data[src * row_vecs + k];
      }
    }
    __syncthreads();
  }
}

}  // namespace

cudaError_t LaunchGatherRowsToFront(void* data, int64_t row_bytes, const int32_t* rows, int count,
                                    cudaStream_t stream) {
  if (count <= 0) return cudaSuccess;
  if (!data || !rows || row_bytes <= 0 || row_bytes % 16 != 0 ||
      reinterpret_cast<uintptr_t>(data) % 16 != 0) {
    return cudaErrorInvalidValue;
  }
  return LaunchKernel(LaunchGroup::kElementwise, GatherRowsToFrontKernel, 1, kThreads, 0, stream,
                      static_cast<uint4*>(data), row_bytes / 16, rows, count);
}

}  // namespace dms::cuda
