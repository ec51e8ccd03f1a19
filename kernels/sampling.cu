#include "kernels/sampling.h"

#include <cfloat>

#include "kernels/device_util.cuh"

namespace dms::cuda {
namespace {

constexpr int kThreads = 256;

// (value, index) order: larger value first, then lower index; NaN loses.
__device__ __forceinline__ bool Better(float v, int i, float bv, int bi) {
  if (isnan(v)) return false;
  if (isnan(bv)) return true;
  return v > bv || (v == bv && i < bi);
}

__global__ void GreedyArgmaxKernel(const float* logits, int vocab, int32_t* out) {
  __shared__ float sv[kThreads / 32];
  __shared__ int si[kThreads / 32];
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  float bv = NAN;
  int bi = vocab;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = row[i];
    if (Better(v, i, bv, bi)) {
      bv = v;
      bi = i;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (Better(ov, oi, bv, bi)) {
      bv = ov;
      bi = oi;
    }
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sv[warp] = bv;
    si[warp] = bi;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) {
      if (Better(sv[w], si[w], bv, bi)) {
        bv = sv[w];
        bi = si[w];
      }
    }
    out[blockIdx.x] = bi < vocab ? bi : 0;  // an all-NaN row gives 0
  }
}

// One block per row: the greedy pass (first largest index), then the
// exp-sum in double against that maximum, as SummarizeLogits on the host.
__global__ void LogitSummaryKernel(const float* logits, int vocab, LogitRowSummary* out) {
  __shared__ float sv[kThreads / 32];
  __shared__ int si[kThreads / 32];
  __shared__ double ss[kThreads / 32];
  __shared__ float row_max;
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float bv = NAN;
  int bi = vocab;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    const float v = row[i];
    if (Better(v, i, bv, bi)) {
      bv = v;
      bi = i;
    }
  }
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (Better(ov, oi, bv, bi)) {
      bv = ov;
      bi = oi;
    }
  }
  if (lane == 0) {
    sv[warp] = bv;
    si[warp] = bi;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; ++w) {
      if (Better(sv[w], si[w], bv, bi)) {
        bv = sv[w];
        bi = si[w];
      }
    }
    si[0] = bi < vocab ? bi : 0;  // an all-NaN row gives 0
    row_max = bi < vocab ? bv : NAN;
  }
  __syncthreads();
  const float mx = row_max;
  double sum = 0;
  for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
    sum += exp(static_cast<double>(row[i]) - static_cast<double>(mx));
  }
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) ss[warp] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0;
    for (int w = 0; w < kThreads / 32; ++w) total += ss[w];
    out[blockIdx.x] = LogitRowSummary{si[0], mx, log(total) + static_cast<double>(mx)};
  }
}

}  // namespace

cudaError_t LaunchLogitSummary(const float* logits, int rows, int vocab, LogitRowSummary* out,
                               cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  LogitSummaryKernel<<<rows, kThreads, 0, stream>>>(logits, vocab, out);
  return cudaGetLastError();
}

cudaError_t LaunchGreedyArgmax(const float* logits, int rows, int vocab, int32_t* out,
                               cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  GreedyArgmaxKernel<<<rows, kThreads, 0, stream>>>(logits, vocab, out);
  return cudaGetLastError();
}

}  // namespace dms::cuda
