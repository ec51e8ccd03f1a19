// Sampling every logit row on the device with dms::Sampler's semantics
// (engine/core/sampler.cc), one block of 1024 threads per row.
//
//   greedy (temperature 0 or top-k 1): argmax of the penalized row, lowest id.
//   kept list of n = min(top_k or vocab) <= kCandidates tokens (the common
//     case: top-k 20): select the n best (sampling_select.cuh), sort them in
//     shared memory and run the CPU's softmax / top-p / min-p / draw on them
//     in one thread, in the CPU's order of floating-point operations.
//   larger lists (top-k off over a big vocabulary): no sort. The maximum, then
//     one pass of exp(v - top) into a digit histogram of exact fixed-point
//     masses; the top-p cut and the draw are radix selects on that mass
//     (Select), the min-p cut a value threshold.
// Logprobs are of the raw row (raw logit - log_sum_exp of the row summary);
// the top-n raw logits are a count select too. The sampled token is recorded
// in the row's penalty slot for the next step.
#include <cfloat>

#include "kernels/sampling.h"
#include "kernels/sampling_select.cuh"

namespace dms::cuda {
namespace {

using sampling::Cut;
using sampling::kCandidates;
using sampling::KeyRange;
using sampling::kSampleThreads;
using sampling::PrefixTotals;
using sampling::RowCtx;
using sampling::SampleSmem;
using sampling::Target;

constexpr uint64_t kAll = ~0ull;  // a set limit that keeps every element
constexpr KeyRange kAnyKey{0u, 0xffffffffu};

// sm.cand[0, n) = sort keys of the set's n best elements, sorted.
__device__ __forceinline__ void SelectBest(const RowCtx& c, SampleSmem& sm, int n) {
  if (n >= c.vocab) {
    sampling::GatherSorted(c, sm, kAll, kAnyKey);
    return;
  }
  sampling::HistPass<false>(c, sm, kAll, kAnyKey, 0, 0.0f);
  const Target t{false, false, static_cast<uint32_t>(n), 0.0};
  const sampling::Bucket bk = sampling::LocateBucket(sm, t, 0, 0.0);
  if (bk.count_before + bk.count <= static_cast<uint32_t>(kCandidates)) {  // bins up to n's
    sampling::GatherSorted(c, sm, kAll,
                           KeyRange{0u, (static_cast<uint32_t>(bk.bin) << 21) | 0x1fffffu});
    return;
  }
  bool level0 = true;
  const Cut cut = sampling::Select(c, sm, kAll, 0.0f, t, &level0);
  sampling::GatherSorted(c, sm, cut.sk, kAnyKey);
}

// Top-n logprobs of the raw row into out (all threads call; n >= 1).
__device__ __forceinline__ void TopLogprobs(const RowCtx& raw, SampleSmem& sm, int n, double lse,
                                            SampledRow* out) {
  SelectBest(raw, sm, n);
  if (threadIdx.x < kMaxTopLogprobs) {
    const int j = threadIdx.x;
    const int id = j < n ? sampling::SortKeyId(sm.cand[j]) : -1;
    out->top_ids[j] = id;
    out->top_logprobs[j] = id >= 0 ? static_cast<float>(raw.x[id] - lse) : 0.0f;
  }
  __syncthreads();
}

// Sampler::Sample's arithmetic after top-k on probs[0, n) = exp(v - top) of
// the kept list in order: normalise, top-p, min-p, the draw. One thread.
__device__ __forceinline__ int CpuOrderDraw(double* probs, int n, const RowSamplingParams& p) {
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += probs[i];
  for (int i = 0; i < n; ++i) probs[i] /= sum;
  if (p.top_p < 1.0f) {
    double cum = 0;
    int keep = n;
    for (int i = 0; i < n; ++i) {
      cum += probs[i];
      if (cum >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
    n = keep;
  }
  if (p.min_p > 0.0f) {
    const double floor = p.min_p * probs[0];
    int keep = 1;
    while (keep < n && probs[keep] >= floor) ++keep;
    n = keep;
  }
  double mass = 0;
  for (int i = 0; i < n; ++i) mass += probs[i];
  const double u = p.uniform * mass;
  double cum = 0;
  for (int i = 0; i < n; ++i) {
    cum += probs[i];
    if (u < cum) return i;
  }
  return n - 1;
}

// Kept list of n <= kCandidates: select, sort, then the CPU's arithmetic.
__device__ __forceinline__ int SampleShortList(const RowCtx& c, SampleSmem& sm, int n,
                                               const RowSamplingParams& p) {
  __shared__ int pick;
  SelectBest(c, sm, n);
  const double top = sampling::SortKeyValue(sm.cand[0]);
  for (int i = threadIdx.x; i < n; i += kSampleThreads) {
    sm.weight[i] = exp(static_cast<double>(sampling::SortKeyValue(sm.cand[i])) - top);
  }
  __syncthreads();
  if (threadIdx.x == 0) pick = CpuOrderDraw(sm.weight, n, p);
  __syncthreads();
  return sampling::SortKeyId(sm.cand[pick]);
}

// The smallest float s kept by min-p: exp(s - top) >= min_p (the CPU keeps
// p_i >= min_p * p_0 with p_0 = exp(0) / sum).
__device__ __forceinline__ float MinPThreshold(float top, float min_p) {
  auto kept = [&](float s) {
    return exp(static_cast<double>(s) - top) >= static_cast<double>(min_p);
  };
  float s = static_cast<float>(static_cast<double>(top) + log(static_cast<double>(min_p)));
  for (int i = 0; i < 64 && !kept(s); ++i) s = nextafterf(s, INFINITY);
  for (int i = 0; i < 64 && kept(nextafterf(s, -INFINITY)); ++i) s = nextafterf(s, -INFINITY);
  return s;
}

// The row's largest value. Without penalties it is the raw maximum times
// 1/T (rounding x * (1/T) is monotone in x), which saves a pass.
__device__ __forceinline__ float RowTop(const RowCtx& c, float max_logit) {
  if (!c.seen && isfinite(max_logit)) return sampling::Canonical(__fmul_rn(max_logit, c.inv_t));
  return sampling::SortKeyValue(sampling::MaxPass(c));
}

// Kept list longer than kCandidates (top-k n_k of the sorted order): no sort.
// max_logit: the raw row's maximum (LogitRowSummary).
__device__ __forceinline__ int SampleLongList(const RowCtx& c, SampleSmem& sm, int n_k,
                                              float max_logit, const RowSamplingParams& p) {
  const float top = RowTop(c, max_logit);
  bool level0 = false;
  uint64_t set = kAll;  // the top-k prefix
  if (n_k < c.vocab) {
    set = sampling::Select(c, sm, kAll, top, Target{false, false, static_cast<uint32_t>(n_k), 0.0},
                           &level0)
              .sk;
    level0 = false;
  }
  const bool min_p = p.min_p > 0.0f && isfinite(top);
  const uint32_t min_p_key = min_p ? sampling::DescKey(MinPThreshold(top, p.min_p)) : 0xffffffffu;
  PrefixTotals min_p_set{};  // the set's tokens min-p keeps
  sampling::HistPass<true>(c, sm, set, kAnyKey, 0, top, min_p ? &min_p_set : nullptr, min_p_key);
  level0 = true;
  const int a = 2 * threadIdx.x, b = a + 1;
  const double total =
      static_cast<double>(sampling::BlockSumU64(sm.hist_hi[a] + sm.hist_hi[b])) * 0x1p-31 +
      static_cast<double>(sampling::BlockSumU64(sm.hist_lo[a] + sm.hist_lo[b])) * 0x1p-63;
  // The kept prefix ends at `limit`; `kept` is its mass.
  uint64_t limit = set;
  double kept = total;
  if (p.top_p < 1.0f) {
    const Cut cut =
        sampling::Select(c, sm, set, top, Target{true, false, 0, p.top_p * total}, &level0);
    limit = cut.sk;
    kept = cut.mass;
  }
  const uint64_t min_p_limit = sampling::SortKey(min_p_key, -1);  // id bits all ones
  const bool min_p_cuts = min_p && min_p_limit < limit;
  if (min_p_cuts) {
    limit = min_p_limit;
    kept =
        static_cast<double>(min_p_set.hi) * 0x1p-31 + static_cast<double>(min_p_set.lo) * 0x1p-63;
  }
  uint64_t pick =
      sampling::Select(c, sm, set, top, Target{true, true, 0, p.uniform * kept}, &level0).sk;
  if (pick > limit && !min_p_cuts) pick = limit;
  if (pick > limit) {  // the draw rounded past the kept prefix: its last token, as the CPU
    level0 = false;
    pick =
        sampling::Select(c, sm, set, top, Target{false, false, min_p_set.count, 0.0}, &level0).sk;
  }
  return sampling::SortKeyId(pick);
}

__global__ void __launch_bounds__(kSampleThreads, 1)
    SampleRowsKernel(const float* logits, int vocab, const RowSamplingParams* params,
                     const LogitRowSummary* summaries, PenaltyState penalties, SampledRow* out) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  SampleSmem& sm = *reinterpret_cast<SampleSmem*>(smem_raw);
  const int row = blockIdx.x;
  const RowSamplingParams p = params[row];
  const float* x = logits + static_cast<int64_t>(row) * vocab;
  const double lse = summaries[row].log_sum_exp;
  const bool has_slot = penalties.seen && penalties.counts && p.penalty_slot >= 0 &&
                        p.penalty_slot < penalties.num_slots;
  uint8_t* seen =
      has_slot ? penalties.seen + static_cast<int64_t>(p.penalty_slot) * vocab : nullptr;
  int32_t* counts =
      has_slot ? penalties.counts + static_cast<int64_t>(p.penalty_slot) * vocab : nullptr;

  const int n_top = min(max(p.num_logprobs, 0), min(vocab, kMaxTopLogprobs));
  if (n_top > 0) {
    const RowCtx raw{x, nullptr, nullptr, vocab, 1.0f, 0.0f, 0.0f, 1.0f, true};
    TopLogprobs(raw, sm, n_top, lse, &out[row]);
  } else if (threadIdx.x < kMaxTopLogprobs) {
    out[row].top_ids[threadIdx.x] = -1;
    out[row].top_logprobs[threadIdx.x] = 0.0f;
  }

  const bool repetition = has_slot && p.repetition_penalty != 1.0f;
  const bool by_count = has_slot && (p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f);
  RowCtx c{x,
           repetition || by_count ? seen : nullptr,
           by_count ? counts : nullptr,
           vocab,
           p.repetition_penalty,
           p.presence_penalty,
           p.frequency_penalty,
           1.0f,
           false};
  int id;
  if (p.temperature == 0.0f || p.top_k == 1) {  // SamplingParams::greedy(): no temperature
    id = sampling::SortKeyId(sampling::MaxPass(c));
  } else {
    c.inv_t = __fdiv_rn(1.0f, p.temperature);
    const int n_k = p.top_k > 0 && p.top_k < vocab ? p.top_k : vocab;
    id = n_k <= kCandidates ? SampleShortList(c, sm, n_k, p)
                            : SampleLongList(c, sm, n_k, summaries[row].max_logit, p);
  }
  id = id >= 0 && id < vocab ? id : 0;
  __syncthreads();  // every read of the penalty slot is done
  if (threadIdx.x == 0) {
    out[row].id = id;
    out[row].logprob = static_cast<float>(x[id] - lse);
    if (has_slot) {  // Sampler::Record
      counts[id] += 1;
      seen[id] = 1;
    }
  }
}

}  // namespace

size_t SampleRowsScratchBytes(int rows, int vocab) { return 0; }

cudaError_t LaunchSampleRows(const float* logits, int rows, int vocab,
                             const RowSamplingParams* params, const LogitRowSummary* summaries,
                             const PenaltyState& penalties, void* scratch, SampledRow* out,
                             cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (vocab <= 0 || !logits || !params || !summaries || !out) return cudaErrorInvalidValue;
  const int smem = static_cast<int>(sizeof(SampleSmem));
  static const cudaError_t attr =
      cudaFuncSetAttribute(SampleRowsKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (attr != cudaSuccess) return attr;
  SampleRowsKernel<<<rows, kSampleThreads, smem, stream>>>(logits, vocab, params, summaries,
                                                           penalties, out);
  return cudaGetLastError();
}

}  // namespace dms::cuda
