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

// The summary in two passes, so that a row is read by many blocks (one
// block per row took 0.4 ms for a 152K vocabulary: a third of a 16-layer
// decode step's small kernels). Pass 1, block (p, r): over its slice of the
// row, the first largest entry and sum(exp(x - slice max)) in double.
// Pass 2, one warp per row: the first largest entry over the slices (they
// are in index order, Better breaks ties by index) and
// sum_p sum_p * exp(max_p - max), whose rounding differs from the host's
// one sum by about 1e-16 relative.
constexpr int kSummarySlice = 2048;  // logits per block of pass 1

int SummarySlices(int vocab) { return (vocab + kSummarySlice - 1) / kSummarySlice; }

struct SlicePartial {
  float max_logit;
  int32_t argmax;
  double sum;
};

__global__ void LogitSummarySliceKernel(const float* logits, int vocab, SlicePartial* partials) {
  __shared__ float sv[kThreads / 32];
  __shared__ int si[kThreads / 32];
  __shared__ double ss[kThreads / 32];
  __shared__ float slice_max;
  const int p = blockIdx.x, slices = gridDim.x;
  const float* row = logits + static_cast<int64_t>(blockIdx.y) * vocab;
  const int begin = p * kSummarySlice, end = min(vocab, begin + kSummarySlice);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float bv = NAN;
  int bi = vocab;
  for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
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
    si[0] = bi;
    slice_max = bv;
  }
  __syncthreads();
  const double mx = slice_max;
  double sum = 0;
  for (int i = begin + threadIdx.x; i < end; i += blockDim.x) sum += exp(static_cast<double>(row[i]) - mx);
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) ss[warp] = sum;
  __syncthreads();
  if (threadIdx.x == 0) {
    double total = 0;
    for (int w = 0; w < kThreads / 32; ++w) total += ss[w];
    partials[static_cast<int64_t>(blockIdx.y) * slices + p] = SlicePartial{slice_max, si[0], total};
  }
}

// One warp per row.
__global__ void LogitSummaryMergeKernel(const SlicePartial* partials, int slices, int vocab,
                                        LogitRowSummary* out) {
  const SlicePartial* part = partials + static_cast<int64_t>(blockIdx.x) * slices;
  const int lane = threadIdx.x;
  float bv = NAN;
  int bi = vocab;
  for (int p = lane; p < slices; p += 32) {
    if (part[p].argmax < vocab && Better(part[p].max_logit, part[p].argmax, bv, bi)) {
      bv = part[p].max_logit;
      bi = part[p].argmax;
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
  const double mx = bi < vocab ? bv : NAN;  // an all-NaN row: index 0, NaN sums
  double sum = 0;
  for (int p = lane; p < slices; p += 32) {
    sum += part[p].sum * exp(static_cast<double>(part[p].max_logit) - mx);
  }
  for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
  if (lane == 0) {
    out[blockIdx.x] = LogitRowSummary{bi < vocab ? bi : 0, static_cast<float>(mx), log(sum) + mx};
  }
}

}  // namespace

size_t LogitSummaryScratchBytes(int rows, int vocab) {
  return static_cast<size_t>(rows > 0 ? rows : 0) * SummarySlices(vocab > 0 ? vocab : 1) *
         sizeof(SlicePartial);
}

cudaError_t LaunchLogitSummary(const float* logits, int rows, int vocab, void* scratch,
                               LogitRowSummary* out, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (vocab <= 0 || !scratch) return cudaErrorInvalidValue;
  const int slices = SummarySlices(vocab);
  SlicePartial* partials = static_cast<SlicePartial*>(scratch);
  LogitSummarySliceKernel<<<dim3(slices, rows), kThreads, 0, stream>>>(logits, vocab, partials);
  LogitSummaryMergeKernel<<<rows, 32, 0, stream>>>(partials, slices, vocab, out);
  return cudaGetLastError();
}

cudaError_t LaunchGreedyArgmax(const float* logits, int rows, int vocab, int32_t* out,
                               cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  GreedyArgmaxKernel<<<rows, kThreads, 0, stream>>>(logits, vocab, out);
  return cudaGetLastError();
}

}  // namespace dms::cuda
