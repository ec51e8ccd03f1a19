#include "kernels/sampling.h"

#include <cfloat>

#include "kernels/device_util.cuh"

namespace dms::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

// The best (value, index) seen: larger value first, then lower index; NaN
// loses. `i == none` means nothing (or only NaN) was seen.
struct Best {
  float v;
  int i;
};

__device__ __forceinline__ bool Better(float v, int i, const Best& b) {
  if (isnan(v)) return false;
  if (isnan(b.v)) return true;
  return v > b.v || (v == b.v && i < b.i);
}

__device__ __forceinline__ void Offer(Best& b, float v, int i) {
  if (Better(v, i, b)) b = Best{v, i};
}

// Over row[begin, end), this thread's share (stride blockDim.x).
__device__ __forceinline__ Best ThreadBest(const float* row, int begin, int end, int none) {
  Best b{NAN, none};
  for (int i = begin + threadIdx.x; i < end; i += blockDim.x) Offer(b, row[i], i);
  return b;
}

__device__ __forceinline__ Best WarpBest(Best b) {
  for (int o = 16; o > 0; o >>= 1) {
    Offer(b, __shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o));
  }
  return b;
}

// The block's best, in every thread (blockDim.x == kThreads).
__device__ __forceinline__ Best BlockBest(Best b) {
  __shared__ Best warp_best[kWarps];
  __shared__ Best block_best;
  b = WarpBest(b);
  if ((threadIdx.x & 31) == 0) warp_best[threadIdx.x >> 5] = b;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kWarps; ++w) Offer(b, warp_best[w].v, warp_best[w].i);
    block_best = b;
  }
  __syncthreads();
  return block_best;
}

__device__ __forceinline__ double WarpSumDouble(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The block's sum in thread 0, warps added in order (blockDim.x == kThreads).
__device__ __forceinline__ double BlockSumDouble(double v) {
  __shared__ double warp_sum[kWarps];
  v = WarpSumDouble(v);
  if ((threadIdx.x & 31) == 0) warp_sum[threadIdx.x >> 5] = v;
  __syncthreads();
  double total = 0;
  if (threadIdx.x == 0) {
    for (int w = 0; w < kWarps; ++w) total += warp_sum[w];
  }
  return total;
}

__global__ void GreedyArgmaxKernel(const float* logits, int vocab, int32_t* out) {
  const float* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  const Best b = BlockBest(ThreadBest(row, 0, vocab, vocab));
  if (threadIdx.x == 0) out[blockIdx.x] = b.i < vocab ? b.i : 0;  // an all-NaN row gives 0
}

// The summary in two passes, so that a row is read by many blocks (one block
// a row makes a 152K-entry row as slow as the LM head itself). Pass 1, block (p, r): over its slice of the row, the
// first largest entry and sum(exp(x - slice max)) in double. Pass 2, one
// warp per row: the first largest entry over the slices (Better breaks ties
// by index) and sum_p sum_p * exp(max_p - max), whose rounding differs from
// the host's one sum by about 1e-16 relative.
constexpr int kSummarySlice = 2048;  // logits per block of pass 1

int SummarySlices(int vocab) { return (vocab + kSummarySlice - 1) / kSummarySlice; }

struct SlicePartial {
  float max_logit;
  int32_t argmax;  // vocab when the slice held only NaN
  double sum;
};

__global__ void LogitSummarySliceKernel(const float* logits, int vocab, SlicePartial* partials) {
  const float* row = logits + static_cast<int64_t>(blockIdx.y) * vocab;
  const int begin = blockIdx.x * kSummarySlice, end = min(vocab, begin + kSummarySlice);
  const Best b = BlockBest(ThreadBest(row, begin, end, vocab));
  double sum = 0;
  for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
    sum += exp(static_cast<double>(row[i]) - static_cast<double>(b.v));
  }
  sum = BlockSumDouble(sum);
  if (threadIdx.x == 0) {
    const int64_t at = static_cast<int64_t>(blockIdx.y) * gridDim.x + blockIdx.x;
    partials[at] = SlicePartial{b.v, b.i, sum};
  }
}

// One warp per row.
__global__ void LogitSummaryMergeKernel(const SlicePartial* partials, int slices, int vocab,
                                        LogitRowSummary* out) {
  const SlicePartial* part = partials + static_cast<int64_t>(blockIdx.x) * slices;
  Best b{NAN, vocab};
  for (int p = threadIdx.x; p < slices; p += 32) {
    if (part[p].argmax < vocab) Offer(b, part[p].max_logit, part[p].argmax);
  }
  b = WarpBest(b);
  const double mx = b.i < vocab ? b.v : NAN;  // an all-NaN row: index 0, NaN sums
  double sum = 0;
  for (int p = threadIdx.x; p < slices; p += 32) {
    sum += part[p].sum * exp(static_cast<double>(part[p].max_logit) - mx);
  }
  sum = WarpSumDouble(sum);
  if (threadIdx.x == 0) {
    out[blockIdx.x] = LogitRowSummary{b.i < vocab ? b.i : 0, static_cast<float>(mx), log(sum) + mx};
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
