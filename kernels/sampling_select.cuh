// Order statistics of one logit row for the row sampler (sampling_rows.cu):
// one block of kSampleThreads threads per row, the row read from global
// memory in passes (it does not fit in shared memory).
//
// Order. Elements are sorted by value descending, ties by lower id (the CPU
// sampler's order). Each element has a 64-bit sort key (DescKey(value) << 32
// | id) whose ascending order is that order. A "set" is a prefix of it: the
// elements whose sort key is <= a limit.
//
// Select. The first element of the set (in order) at which the running count,
// or the running probability mass exp(v - top), reaches a target. Radix
// select over the 32-bit value key in 3 digits (11, 11, 10 bits): a pass
// builds the histogram of the digit (count, and mass in 128-bit fixed point,
// so sums are exact and independent of the order of atomics), the target's
// bin is found by a block scan; once the bin holds <= kCandidates elements
// they are gathered into shared memory, sorted and walked exactly. A bin of
// one key with more elements (ties) is resolved in id order by a scan.
#pragma once

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "kernels/sampling_block.cuh"

namespace dms::cuda::sampling {

constexpr int kCandidates = 2048;  // elements sorted in shared memory at once
constexpr int kBins = 2048;        // histogram bins (11-bit digits)
constexpr int kLevels = 3;

__device__ __forceinline__ int DigitShift(int level) {
  return level == 0 ? 21 : level == 1 ? 10 : 0;
}
__device__ __forceinline__ uint32_t DigitMask(int level) { return level == 2 ? 0x3ffu : 0x7ffu; }

// The kernel's shared memory (dynamic, 72 KiB).
struct SampleSmem {
  uint64_t cand[kCandidates];  // sort keys of gathered elements
  double weight[kCandidates];  // their probabilities (exp(v - top)), CPU-order work
  uint32_t hist_count[kBins];
  unsigned long long hist_hi[kBins];  // mass of a bin = (hi * 2^32 + lo) * 2^-63
  unsigned long long hist_lo[kBins];
};

// Ascending key order = descending value order (IEEE total order on
// non-NaN floats; callers map NaN to -inf and -0 to +0 first).
__device__ __forceinline__ uint32_t DescKey(float v) {
  const uint32_t u = __float_as_uint(v);
  return (u & 0x80000000u) ? u : ~(u | 0x80000000u);
}

__device__ __forceinline__ float KeyValue(uint32_t key) {
  return __uint_as_float((key & 0x80000000u) ? key : ~key & 0x7fffffffu);
}

__device__ __forceinline__ uint64_t SortKey(uint32_t key, int id) {
  return (static_cast<uint64_t>(key) << 32) | static_cast<uint32_t>(id);
}

__device__ __forceinline__ int SortKeyId(uint64_t sk) { return static_cast<int>(sk & 0xffffffffu); }
__device__ __forceinline__ float SortKeyValue(uint64_t sk) {
  return KeyValue(static_cast<uint32_t>(sk >> 32));
}

// One row and how its values are made from the logits.
struct RowCtx {
  const float* x;         // [vocab] logits
  const uint8_t* seen;    // [vocab] penalty slot's seen tokens; null: no penalty applies
  const int32_t* counts;  // [vocab] output counts; null: no presence/frequency penalty
  int vocab;
  float repetition, presence, frequency;
  float inv_t;  // 1 / temperature (1: greedy)
  bool raw;     // the raw logits (top logprobs): no penalties, no temperature
};

__device__ __forceinline__ float Canonical(float v) {
  if (isnan(v)) return -INFINITY;
  return v == 0.0f ? 0.0f : v;  // -0 ties with +0, as in the CPU's comparisons
}

// Sampler::ApplyPenalties then the temperature, in the CPU's float operations
// and order (explicit roundings: no contraction into FMAs).
__device__ __forceinline__ float RowValue(const RowCtx& c, int i, float x, bool seen) {
  if (c.raw) return Canonical(x);
  float v = x;
  if (seen) {
    if (c.repetition != 1.0f)
      v = v > 0.0f ? __fdiv_rn(v, c.repetition) : __fmul_rn(v, c.repetition);
    if (c.counts) {
      const int n = c.counts[i];
      if (n > 0) v = __fsub_rn(v, __fadd_rn(__fmul_rn(c.frequency, __int2float_rn(n)), c.presence));
    }
  }
  return Canonical(__fmul_rn(v, c.inv_t));
}

__device__ __forceinline__ float LoadValue(const RowCtx& c, int i) {
  return RowValue(c, i, c.x[i], c.seen && c.seen[i]);
}

// Calls f(i, value, valid) for every element of the row, each thread the
// same number of times; `valid` is false past the row's end. Loads 4 float4
// per thread ahead of use.
template <typename F>
__device__ __forceinline__ void ForEachElement(const RowCtx& c, F&& f) {
  constexpr int kBatch = 4;
  const int groups = (c.vocab + 3) >> 2;
  const bool vec = (c.vocab & 3) == 0 && (reinterpret_cast<uintptr_t>(c.x) & 15) == 0 &&
                   (reinterpret_cast<uintptr_t>(c.seen) & 3) == 0;
  for (int g0 = 0; g0 < groups; g0 += kSampleThreads * kBatch) {
    float xs[kBatch][4];
    uint32_t seen4[kBatch];
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      const int g = g0 + b * kSampleThreads + threadIdx.x;
      seen4[b] = 0;
      if (vec && g < groups) {
        const float4 v = reinterpret_cast<const float4*>(c.x)[g];
        xs[b][0] = v.x, xs[b][1] = v.y, xs[b][2] = v.z, xs[b][3] = v.w;
        if (c.seen) seen4[b] = reinterpret_cast<const uint32_t*>(c.seen)[g];
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int i = 4 * g + e;
          const bool ok = g < groups && i < c.vocab;
          xs[b][e] = ok ? c.x[i] : 0.0f;
          if (ok && c.seen && c.seen[i]) seen4[b] |= 1u << (8 * e);
        }
      }
    }
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int i = 4 * (g0 + b * kSampleThreads + static_cast<int>(threadIdx.x)) + e;
        const bool valid = i < c.vocab;
        const bool seen = (seen4[b] >> (8 * e)) & 0xffu;
        f(i, valid ? RowValue(c, i, xs[b][e], seen) : -INFINITY, valid);
      }
    }
  }
}

// The best element's sort key (largest value, lowest id).
__device__ __forceinline__ uint64_t MaxPass(const RowCtx& c) {
  uint64_t best = ~0ull;
  ForEachElement(c, [&](int i, float v, bool valid) {
    const uint64_t sk = SortKey(DescKey(v), i);
    if (valid && sk < best) best = sk;
  });
  return BlockMinU64(best);
}

// exp(v - top) in 2^-63 units (top is the row's maximum, so it is <= 2^63).
__device__ __forceinline__ uint64_t MassUnits(float v, float top) {
  const double e = exp(static_cast<double>(v) - static_cast<double>(top));
  return e > 0.0 ? __double2ull_rn(fmin(e, 1.0) * 0x1p63) : 0ull;
}

__device__ __forceinline__ double BinMass(const SampleSmem& sm, int bin) {
  return static_cast<double>(sm.hist_hi[bin]) * 0x1p-31 +
         static_cast<double>(sm.hist_lo[bin]) * 0x1p-63;
}

// A thread's run of consecutive elements in one histogram bin, added with
// one set of atomics when the bin changes: rows of equal values or -inf
// masks (one bin for most of the row) then add once a run instead of once an
// element on one address. Integer atomics: sums do not depend on the order.
template <bool kMass>
struct HistRun {
  int bin = -1;
  uint32_t count = 0;
  unsigned long long hi = 0, lo = 0;  // mass = (hi * 2^32 + lo) * 2^-63

  __device__ __forceinline__ void Flush(SampleSmem& sm) {
    if (bin < 0) return;
    atomicAdd(&sm.hist_count[bin], count);
    if (kMass && (hi | lo)) {
      atomicAdd(&sm.hist_hi[bin], hi);
      atomicAdd(&sm.hist_lo[bin], lo);
    }
    bin = -1;
  }
  // Adds (1, q) to `b` (>= 0).
  __device__ __forceinline__ void Add(SampleSmem& sm, int b, uint64_t q) {
    if (b != bin) {
      Flush(sm);
      bin = b;
      count = 0;
      hi = lo = 0;
    }
    ++count;
    if (kMass) {
      hi += q >> 32;
      lo += q & 0xffffffffu;
    }
  }
};

struct KeyRange {
  uint32_t lo, hi;  // inclusive
};

// Count and mass of the set's elements with key <= split (min-p's prefix).
struct PrefixTotals {
  uint32_t count;
  unsigned long long hi, lo;  // mass = (hi * 2^32 + lo) * 2^-63
};

// Histogram by the digit at `level` of the set's elements (sort key <= lim)
// whose key lies in r: counts, and masses exp(v - top) when kMass. With
// `prefix` (kMass only), also the totals of the set's elements with key <= split.
template <bool kMass>
__device__ __forceinline__ void HistPass(const RowCtx& c, SampleSmem& sm, uint64_t lim, KeyRange r,
                                         int level, float top, PrefixTotals* prefix = nullptr,
                                         uint32_t split = 0) {
  __syncthreads();  // the previous histogram may still be read
  for (int b = threadIdx.x; b < kBins; b += kSampleThreads) {
    sm.hist_count[b] = 0;
    sm.hist_hi[b] = sm.hist_lo[b] = 0;
  }
  __syncthreads();
  const int shift = DigitShift(level);
  const uint32_t mask = DigitMask(level);
  uint32_t pre_count = 0;
  unsigned long long pre_hi = 0, pre_lo = 0;
  HistRun<kMass> run;
  ForEachElement(c, [&](int i, float v, bool valid) {
    const uint32_t key = DescKey(v);
    if (!valid || key < r.lo || key > r.hi || SortKey(key, i) > lim) return;
    const uint64_t q = kMass ? MassUnits(v, top) : 0ull;
    run.Add(sm, static_cast<int>((key >> shift) & mask), q);
    if (kMass && prefix && key <= split) {
      ++pre_count;
      pre_hi += q >> 32;
      pre_lo += q & 0xffffffffu;
    }
  });
  run.Flush(sm);
  if (prefix) {
    prefix->count = static_cast<uint32_t>(BlockSumU64(pre_count));
    prefix->hi = BlockSumU64(pre_hi);
    prefix->lo = BlockSumU64(pre_lo);
  }
  __syncthreads();
}

// Gathers the sort keys of the set's elements with key in r into sm.cand
// (at most kCandidates: the caller knows the count) and sorts them.
__device__ __forceinline__ int GatherSorted(const RowCtx& c, SampleSmem& sm, uint64_t lim,
                                            KeyRange r) {
  __shared__ int count;
  __syncthreads();
  if (threadIdx.x == 0) count = 0;
  __syncthreads();
  ForEachElement(c, [&](int i, float v, bool valid) {
    const uint32_t key = DescKey(v);
    const uint64_t sk = SortKey(key, i);
    if (!valid || key < r.lo || key > r.hi || sk > lim) return;
    const int slot = atomicAdd(&count, 1);  // few elements qualify: at most kCandidates
    if (slot < kCandidates) sm.cand[slot] = sk;
  });
  __syncthreads();
  const int n = min(count, kCandidates);
  BlockSortU64(sm.cand, n);
  return n;
}

// The id of the j-th (0-based, in id order) set element whose key is `key`.
__device__ __forceinline__ int TieScan(const RowCtx& c, uint64_t lim, uint32_t key, uint32_t j) {
  __shared__ int found;
  __syncthreads();
  if (threadIdx.x == 0) found = -1;
  __syncthreads();
  uint32_t done = 0;  // tied elements in earlier chunks
  for (int base = 0; base < c.vocab; base += 4 * kSampleThreads) {
    const int i0 = base + 4 * threadIdx.x;  // this thread's 4 ids
    uint32_t match = 0;
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int i = i0 + e;
      if (i < c.vocab && DescKey(LoadValue(c, i)) == key && SortKey(key, i) <= lim)
        match |= 1u << e;
    }
    uint32_t total = 0;
    const uint32_t rank = done + BlockExclusiveScan<uint32_t>(__popc(match), &total);
    if (j >= rank && j < rank + __popc(match)) {
      uint32_t r = rank;
      for (int e = 0; e < 4; ++e) {
        if (!(match >> e & 1u)) continue;
        if (r++ == j) found = i0 + e;
      }
    }
    done += total;
    if (done > j) break;  // total is the same in every thread
  }
  __syncthreads();
  return found;
}

// The bin of the histogram where the running count (or mass) reaches the
// target: the first bin with base + inclusive sum >= target (> when strict,
// mass only). Without one (rounding at the very end), the last nonempty bin.
struct Bucket {
  int bin;
  uint32_t count;         // elements in the bin
  uint32_t count_before;  // in earlier bins
  double mass_before;     // in earlier bins
};

struct Target {
  bool mass;       // false: count
  bool strict;     // mass: first running mass > value (the draw), else >=
  uint32_t count;  // count target, 1-based (the k-th element)
  double value;    // mass target, in exp(v - top) units
};

__device__ __forceinline__ Bucket LocateBucket(const SampleSmem& sm, const Target& t,
                                               uint32_t base_count, double base_mass) {
  __shared__ Bucket result;
  const int a = 2 * threadIdx.x, b = a + 1;
  const uint32_t ca = sm.hist_count[a], cb = sm.hist_count[b];
  uint32_t count_total = 0;
  const uint32_t count_excl = BlockExclusiveScan<uint32_t>(ca + cb, &count_total);
  double mass_excl = 0, ma = 0, mb = 0;
  bool pa, pb;
  if (t.mass) {
    ma = BinMass(sm, a), mb = BinMass(sm, b);
    double mass_total = 0;
    mass_excl = BlockExclusiveScan<double>(ma + mb, &mass_total);
    const double ra = base_mass + (mass_excl + ma), rb = base_mass + ((mass_excl + ma) + mb);
    pa = ca > 0 && (t.strict ? ra > t.value : ra >= t.value);
    pb = cb > 0 && (t.strict ? rb > t.value : rb >= t.value);
  } else {
    pa = ca > 0 && base_count + count_excl + ca >= t.count;
    pb = cb > 0 && base_count + count_excl + ca + cb >= t.count;
  }
  uint32_t first = BlockMinU32(pa ? a : pb ? b : 0xffffffffu);
  if (first == 0xffffffffu) first = BlockMaxU32(cb > 0 ? b : ca > 0 ? a : 0);
  __syncthreads();
  if (first == static_cast<uint32_t>(a)) {
    result = Bucket{a, ca, count_excl, mass_excl};
  } else if (first == static_cast<uint32_t>(b)) {
    result = Bucket{b, cb, count_excl + ca, mass_excl + ma};
  }
  __syncthreads();
  return result;
}

// The selected element: its sort key and the running mass through it.
struct Cut {
  uint64_t sk;
  double mass;
};

// Within a bin gathered into shared memory: the element reaching the target.
__device__ __forceinline__ Cut FinishInBin(const RowCtx& c, SampleSmem& sm, uint64_t lim,
                                           KeyRange bin, float top, const Target& t,
                                           uint32_t base_count, double base_mass) {
  __shared__ Cut result;
  const int n = GatherSorted(c, sm, lim, bin);
  if (!t.mass) {
    const int j = min(max(static_cast<int>(t.count - base_count) - 1, 0), max(n - 1, 0));
    return Cut{n > 0 ? sm.cand[j] : ~0ull, 0.0};
  }
  const int a = 2 * threadIdx.x, b = a + 1;
  const double wa = a < n ? exp(static_cast<double>(SortKeyValue(sm.cand[a])) - top) : 0.0;
  const double wb = b < n ? exp(static_cast<double>(SortKeyValue(sm.cand[b])) - top) : 0.0;
  double total = 0;
  const double excl = BlockExclusiveScan<double>(wa + wb, &total);
  const double ra = base_mass + (excl + wa), rb = base_mass + ((excl + wa) + wb);
  const bool pa = a < n && (t.strict ? ra > t.value : ra >= t.value);
  const bool pb = b < n && (t.strict ? rb > t.value : rb >= t.value);
  uint32_t first = BlockMinU32(pa ? a : pb ? b : 0xffffffffu);
  if (first == 0xffffffffu) first = static_cast<uint32_t>(max(n - 1, 0));  // rounding: the last
  __syncthreads();
  if (first == static_cast<uint32_t>(a)) result = Cut{n > 0 ? sm.cand[a] : ~0ull, ra};
  if (first == static_cast<uint32_t>(b)) result = Cut{sm.cand[b], rb};
  __syncthreads();
  return result;
}

// A bin of one key with more than kCandidates elements: all weigh the same,
// so the target's rank among them follows by division; its id by a scan.
__device__ __forceinline__ Cut FinishTies(const RowCtx& c, uint64_t lim, uint32_t key,
                                          uint32_t count, float top, const Target& t,
                                          uint32_t base_count, double base_mass) {
  long long j;  // 0-based rank among the tied elements
  double w = 1.0;
  if (!t.mass) {
    j = static_cast<long long>(t.count) - base_count - 1;
  } else {
    w = exp(static_cast<double>(KeyValue(key)) - top);
    const double need = (t.value - base_mass) / w;  // elements' worth of mass still needed
    if (!(w > 0.0) || !isfinite(need)) {
      j = count - 1;
    } else if (t.strict) {
      j = static_cast<long long>(floor(fmax(need, -1.0)));
    } else {
      j = static_cast<long long>(ceil(fmin(need, 4294967296.0))) - 1;
    }
  }
  j = j < 0 ? 0 : j >= count ? count - 1 : j;
  const int id = TieScan(c, lim, key, static_cast<uint32_t>(j));
  return Cut{SortKey(key, id), base_mass + static_cast<double>(j + 1) * w};
}

// The first set element (sort key <= lim) where the running count or mass
// reaches t. *level0: in, whether sm's histogram already holds level 0 of
// this set (with masses for a mass target); out, whether it still does.
__device__ __forceinline__ Cut Select(const RowCtx& c, SampleSmem& sm, uint64_t lim, float top,
                                      const Target& t, bool* level0) {
  KeyRange r{0u, 0xffffffffu};
  uint32_t base_count = 0;
  double base_mass = 0.0;
  for (int level = 0; level < kLevels; ++level) {
    if (level > 0 || !*level0) {
      if (t.mass) {
        HistPass<true>(c, sm, lim, r, level, top);
      } else {
        HistPass<false>(c, sm, lim, r, level, top);
      }
      *level0 = level == 0;
    }
    const Bucket bk = LocateBucket(sm, t, base_count, base_mass);
    const int shift = DigitShift(level);
    const uint32_t lo = r.lo | (static_cast<uint32_t>(bk.bin) << shift);
    const KeyRange bin{lo, lo | ((1u << shift) - 1u)};
    base_count += bk.count_before;
    base_mass += bk.mass_before;
    if (bk.count <= static_cast<uint32_t>(kCandidates)) {
      return FinishInBin(c, sm, lim, bin, top, t, base_count, base_mass);
    }
    if (level == kLevels - 1)
      return FinishTies(c, lim, bin.lo, bk.count, top, t, base_count, base_mass);
    r = bin;
  }
  return Cut{~0ull, 0.0};  // not reached
}

}  // namespace dms::cuda::sampling
