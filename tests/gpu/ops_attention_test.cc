// DMS attention on the device against the CPU reference (DmsAttention over
// DmsKvCache), both reading the same cache state and the same chunk: swept
// head_dim, GQA group, window, eviction rate and cache dtype; batches that
// mix a decode token, a prefill on a cached prefix and a fresh prefill;
// caches up to 20,000 tokens; split-K forced and automatic. Both kernels:
// the SIMT fp32 one (every case) and the tensor-core one (bf16 cache, head_dim
// 64/128), the latter with bounds for bf16 q and bf16 softmax weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <random>
#include <string>

#include "engine/cpu/cpu_attention.h"
#include "engine/cpu/thread_pool.h"
#include "kernels/attention.h"
#include "tests/gpu/kv_harness.h"

namespace dms::gpu_testing {
namespace {

constexpr double kMaxNmse = 1e-10;  // both sides fp32 over identical inputs
constexpr double kMaxAbs = 5e-5;
// Tensor cores: q and the softmax weights rounded to bf16 (relative 2^-9
// each) put about 1e-6 of NMSE on the output; a wrong key set or a stale
// tile puts 1e-3 or more.
constexpr double kMmaMaxNmse = 5e-5;
constexpr double kMmaMaxAbs = 2e-2;

// kMmaSparse: the tensor-core kernel walking the chunk's old keys through
// the kept list (LaunchDmsKeptKeys, checked bit for bit here first) and the
// cached slots through theirs (LaunchDmsCachedKeptKeys), q in bf16, as the
// backend runs it; kMma: the same kernel walking every chunk key. Both on
// the mma.sync core; kWgmma / kWgmmaSparse: the same on the wgmma core;
// kWs / kWsSparse: the warp-specialized wgmma kernel (attention_ws.cu).
// kDecode: the streamed decode kernel (LaunchDmsDecodeAttention), decode
// steps only.
enum class Kernel { kSimt, kMma, kMmaSparse, kWgmma, kWgmmaSparse, kWs, kWsSparse, kDecode };

const char* KernelName(Kernel k) {
  switch (k) {
    case Kernel::kSimt: return "dms_attention";
    case Kernel::kMma: return "dms_attention_mma";
    case Kernel::kMmaSparse: return "dms_attention_mma_sparse";
    case Kernel::kWgmma: return "dms_attention_wgmma";
    case Kernel::kWgmmaSparse: return "dms_attention_wgmma_sparse";
    case Kernel::kWs: return "dms_attention_ws";
    case Kernel::kWsSparse: return "dms_attention_ws_sparse";
    case Kernel::kDecode: return "dms_decode_attention";
  }
  return "?";
}

bool Sparse(Kernel k) {
  return k == Kernel::kMmaSparse || k == Kernel::kWgmmaSparse || k == Kernel::kWsSparse;
}

cuda::AttnMmaCore CoreOf(Kernel k) {
  switch (k) {
    case Kernel::kWgmma:
    case Kernel::kWgmmaSparse: return cuda::AttnMmaCore::kWgmma;
    case Kernel::kWs:
    case Kernel::kWsSparse: return cuda::AttnMmaCore::kWgmmaWs;
    default: return cuda::AttnMmaCore::kMmaSync;
  }
}

// The tensor-core variants this device runs at head_dim hd: wgmma only on
// sm_90 (a build with sm_90a code) at head_dim 128; the test suite runs on
// an H100/H200, so there both.
std::vector<Kernel> TensorCoreKernels(int hd) {
  std::vector<Kernel> ks = {Kernel::kMma, Kernel::kMmaSparse};
  if (cuda::DmsAttentionWgmmaAvailable() && hd == 128) {
    ks.push_back(Kernel::kWgmma);
    ks.push_back(Kernel::kWgmmaSparse);
    ks.push_back(Kernel::kWs);
    ks.push_back(Kernel::kWsSparse);
  }
  return ks;
}

// LaunchDmsKeptKeys against the CPU: every kept_count row and the first
// kept_count[last] rows of kept_index of each (chunk, head), bit for bit;
// outputs poisoned before.
void RunKeptKeys(const KvStep& s, int hkv, const cuda::StepChunk* d_chunks, const uint8_t* d_dec,
                 DevArray<int32_t>& d_index, DevArray<int32_t>& d_count) {
  d_index.Resize(static_cast<size_t>(s.num_tokens) * hkv);
  d_count.Resize(static_cast<size_t>(s.num_tokens) * hkv);
  const cudaError_t err =
      cuda::LaunchDmsKeptKeys(d_chunks, static_cast<int>(s.chunks.size()), hkv, d_dec,
                              d_index.get(), d_count.get(), nullptr);
  ASSERT_EQ(err, cudaSuccess) << cudaGetErrorString(err);
  const std::vector<int32_t> index = d_index.Download(), count = d_count.Download();
  int64_t mismatches = 0, kept_total = 0;
  for (const cuda::StepChunk& c : s.chunks) {
    for (int h = 0; h < hkv; ++h) {
      int kept = 0;
      for (int jj = 0; jj < c.n; ++jj) {
        const int64_t r = c.row_base + jj;
        if (jj + 1 >= c.n || s.dec[(r + 1) * hkv + h] == 0) {
          mismatches += index[(c.row_base + kept) * hkv + h] != jj;
          ++kept;
        }
        mismatches += count[r * hkv + h] != kept;
      }
      kept_total += kept;
    }
  }
  EXPECT_EQ(mismatches, 0) << "kept keys: " << mismatches << " wrong entries (" << kept_total
                           << " kept keys over " << s.chunks.size() << " chunks)";
}

// (chunk, head) pairs whose later tiles walked a cached-slot list (not every
// slot): the long tests check that they exercised it.
int64_t g_cached_lists = 0;

// LaunchDmsCachedKeptKeys against the CPU cache (the state before the step):
// each (chunk, head)'s {tail_lo, count} and its listed slots, bit for bit;
// outputs poisoned before.
void RunCachedKeptKeys(KvHarness& hx, const KvStep& s, DevArray<int32_t>& d_index,
                       DevArray<int32_t>& d_tail) {
  const KvHarnessConfig& cfg = hx.config();
  const int hkv = cfg.num_kv_heads, window = cfg.window;
  d_index.Resize(static_cast<size_t>(s.num_tokens) * hkv);
  d_tail.Resize(s.chunks.size() * hkv * 2);
  const cudaError_t err = cuda::LaunchDmsCachedKeptKeys(
      hx.d_chunks(), static_cast<int>(s.chunks.size()), hx.gpu().view(), cfg.layer, hx.d_dec(),
      d_index.get(), d_tail.get(), nullptr);
  ASSERT_EQ(err, cudaSuccess) << cudaGetErrorString(err);
  const std::vector<int32_t> index = d_index.Download(), tail = d_tail.Download();
  // The list holds pool rows (page-table block * block_size + offset): the
  // CPU cache's slots mapped through the GPU cache's page table.
  const cuda::KvDeviceView kv = hx.gpu().view();
  int64_t mismatches = 0;
  for (size_t i = 0; i < s.chunks.size(); ++i) {
    const cuda::StepChunk& c = s.chunks[i];
    for (int h = 0; h < hkv; ++h) {
      const HeadCacheView cv = hx.cpu().View(c.seq, cfg.layer, h);
      const int64_t head = (static_cast<int64_t>(c.seq) * kv.num_layers + cfg.layer) * hkv + h;
      std::vector<int32_t> table(kv.max_blocks_per_head);
      ASSERT_EQ(cudaMemcpy(table.data(), kv.page_table + head * kv.max_blocks_per_head,
                           table.size() * sizeof(int32_t), cudaMemcpyDeviceToHost),
                cudaSuccess);
      const int len = cv.length();
      int tail_lo = len;
      std::vector<int32_t> listed;
      if (window != kDenseWindow && c.n > window + 1) {
        const int lo = c.start_pos - (window + 1);
        for (int slot = 0; slot < len && tail_lo == len; ++slot) {
          if (cv.pos(slot) >= lo) tail_lo = slot;
        }
        if (len - tail_lo > c.n) tail_lo = len;
        for (int slot = tail_lo; slot < len; ++slot) {
          const int32_t pos = cv.pos(slot);
          const bool marked = pos >= lo && (pos == c.start_pos - 1
                                                ? s.dec[static_cast<size_t>(c.row_base) * hkv + h] != 0
                                                : cv.EvictMarked(pos));
          const int32_t row = table[slot / kv.block_size] * kv.block_size + slot % kv.block_size;
          if (!marked) listed.push_back(row);
        }
      }
      const size_t t = (i * hkv + h) * 2;
      mismatches += tail[t] != tail_lo;
      mismatches += tail[t + 1] != static_cast<int32_t>(listed.size());
      for (size_t k = 0; k < listed.size() && tail[t + 1] == static_cast<int32_t>(listed.size()); ++k) {
        mismatches += index[(c.row_base + k) * hkv + h] != listed[k];
      }
      g_cached_lists += tail_lo < len;
    }
  }
  EXPECT_EQ(mismatches, 0) << "cached kept keys: " << mismatches << " wrong entries";
}

ThreadPool& Pool() {
  static ThreadPool pool(0);
  return pool;
}

// The queries RunAttention draws: uniform in [lo, hi], and optionally
// rounded to bf16 values (then the sparse kernels' bf16 q is exactly the
// reference's f32 q: needed where scores are large enough that q's rounding
// would move them by more than the tolerance allows).
struct QueryValues {
  float lo = -2.0f, hi = 2.0f;
  bool bf16_exact = false;
};

// Runs one uploaded step's attention on both sides (the caches as they are,
// before the step is appended) and compares.
ErrorStats RunAttention(KvHarness& hx, const KvStep& s, int group, int splits,
                        std::mt19937_64& rng, Kernel kernel = Kernel::kSimt,
                        const QueryValues& qv = {}) {
  const KvHarnessConfig& c = hx.config();
  const int hkv = c.num_kv_heads, hq = hkv * group, hd = c.head_dim;
  std::vector<float> q =
      RandomUniform(static_cast<size_t>(s.num_tokens) * hq * hd, rng, qv.lo, qv.hi);
  if (qv.bf16_exact) {
    for (float& x : q) x = RoundBf16(x);
  }

  std::vector<float> ref(q.size(), 0.0f);
  std::vector<AttentionChunk> chunks(s.chunks.size());
  for (size_t i = 0; i < s.chunks.size(); ++i) {
    const cuda::StepChunk& sc = s.chunks[i];
    AttentionChunk& a = chunks[i];
    a.n = sc.n;
    a.first_pos = sc.start_pos;
    a.q = &q[static_cast<size_t>(sc.row_base) * hq * hd];
    a.k = &s.k[static_cast<size_t>(sc.row_base) * hkv * hd];
    a.v = &s.v[static_cast<size_t>(sc.row_base) * hkv * hd];
    a.decisions = &s.dec[static_cast<size_t>(sc.row_base) * hkv];
    a.out = &ref[static_cast<size_t>(sc.row_base) * hq * hd];
    for (int h = 0; h < hkv; ++h) a.cache.push_back(hx.cpu().View(sc.seq, c.layer, h));
  }
  DmsAttention(Pool(), AttentionDims{hq, hkv, hd, c.window}, chunks);

  std::vector<cuda::AttnTile> tiles;
  const bool mma = kernel != Kernel::kSimt && kernel != Kernel::kDecode;
  cuda::SetDmsAttentionMmaCore(CoreOf(kernel));
  const int mma_rows = cuda::DmsAttentionMmaRows(hd);
  const int per_tile = std::max(1, (mma ? mma_rows : cuda::kAttnMaxRows) / group);
  for (size_t i = 0; i < s.chunks.size(); ++i) {
    for (int b = 0; b < s.chunks[i].n; b += per_tile) {
      tiles.push_back({static_cast<int32_t>(i), b, std::min(per_tile, s.chunks[i].n - b)});
    }
  }
  DevArray<float> d_q, d_out(q.size()), d_po, d_pml;
  d_q.Upload(q);
  // The sparse tensor-core variants read q as bf16, as the backend passes it
  // in prefill (the CPU reference keeps the f32 q).
  DevArray<__nv_bfloat16> d_q16;
  if (Sparse(kernel)) {
    std::vector<__nv_bfloat16> q16(q.size());
    for (size_t i = 0; i < q.size(); ++i) q16[i] = __float2bfloat16_rn(q[i]);
    d_q16.Upload(q16);
  }
  DevArray<cuda::AttnTile> d_tiles;
  d_tiles.Upload(tiles);
  d_po.Resize(static_cast<size_t>(splits) * q.size());
  d_pml.Resize(static_cast<size_t>(splits) * s.num_tokens * hq * 2);
  cuda::AttentionParams p;
  p.q = d_q.get();
  p.q_bf16 = Sparse(kernel) ? d_q16.get() : nullptr;
  p.k_new = hx.d_k();
  p.v_new = hx.d_v();
  p.decisions = hx.d_dec();
  p.chunks = hx.d_chunks();
  p.tiles = d_tiles.get();
  p.num_tiles = static_cast<int>(tiles.size());
  p.num_tokens = s.num_tokens;
  p.num_q_heads = hq;
  p.layer = c.layer;
  p.kv = hx.gpu().view();
  p.num_splits = splits;
  p.out = d_out.get();
  p.part_o = d_po.get();
  p.part_ml = d_pml.get();
  // The split merge's counters start at zero and must be left at zero.
  DevArray<int32_t> d_count;
  d_count.Upload(std::vector<int32_t>(tiles.size() * hkv, 0));
  p.split_count = d_count.get();
  DevArray<int32_t> d_kept_index, d_kept_count, d_cache_index, d_cache_tail;
  if (Sparse(kernel)) {
    RunKeptKeys(s, hkv, hx.d_chunks(), hx.d_dec(), d_kept_index, d_kept_count);
    RunCachedKeptKeys(hx, s, d_cache_index, d_cache_tail);
    p.kept_index = d_kept_index.get();
    p.kept_count = d_kept_count.get();
    p.cache_kept_index = d_cache_index.get();
    p.cache_tail = d_cache_tail.get();
  }
  // The sparse tensor-core variants write bf16 o_proj input, as the backend
  // runs them in prefill (out_gin); the others the f32 output.
  DevArray<__nv_bfloat16> d_gin;
  const bool to_gin = Sparse(kernel);
  if (to_gin) {
    d_gin.Resize(q.size());  // poisoned
    p.out_gin.hi = d_gin.get();
  }
  d_out.Poison();
  const cudaError_t err = mma                          ? cuda::LaunchDmsAttentionMma(p, nullptr)
                         : kernel == Kernel::kDecode ? cuda::LaunchDmsDecodeAttention(p, nullptr)
                                                     : cuda::LaunchDmsAttention(p, nullptr);
  cuda::SetDmsAttentionMmaCore(cuda::AttnMmaCore::kAuto);
  EXPECT_EQ(err, cudaSuccess) << cudaGetErrorString(err);
  const cudaError_t sync = cudaDeviceSynchronize();
  EXPECT_EQ(sync, cudaSuccess) << cudaGetErrorString(sync);
  const std::vector<int32_t> counts = d_count.Download();
  EXPECT_EQ(std::count(counts.begin(), counts.end(), 0), static_cast<std::ptrdiff_t>(counts.size()))
      << "split counters not reset";
  return Compare(to_gin ? FromBf16(d_gin.Download()) : d_out.Download(), ref);
}

struct Case {
  int head_dim, group, window;
  double evict_rate;
  cuda::KvDType dtype;
};

bool MmaCase(const Case& c) {
  return cuda::DmsAttentionMmaSupported(c.dtype, c.head_dim, c.group);
}

std::string Shape(const Case& c, const std::string& extra) {
  char buf[160];
  std::snprintf(buf, sizeof(buf), "hd=%d g=%d W=%d p=%.3f kv=%s %s", c.head_dim, c.group,
                c.window, c.evict_rate, c.dtype == cuda::KvDType::kBF16 ? "bf16" : "f32",
                extra.c_str());
  return buf;
}

// History: a (703 tokens in mixed chunks), b (37), c (fresh). The query step
// mixes a decode token for a, a 45-token prefill on b's cache and a 70-token
// fresh prefill for c; then the step is appended and a decode step for all
// three runs on the grown caches.
void RunMixedBatchCase(const Case& c, std::mt19937_64& rng) {
  SCOPED_TRACE(Shape(c, ""));
  KvHarnessConfig cfg;
  cfg.num_kv_heads = 2;
  cfg.head_dim = c.head_dim;
  cfg.window = c.window;
  cfg.dtype = c.dtype;
  cfg.num_blocks = 2 * 2 * 3 * (1000 / 16 + 8);
  KvHarness hx(cfg);
  const SeqId a = hx.AddSequence(), b = hx.AddSequence(), d = hx.AddSequence();
  for (const auto& step : std::vector<std::vector<std::pair<SeqId, int>>>{
           {{a, 300}, {b, 36}}, {{a, 1}, {b, 1}}, {{a, 401}}, {{a, 1}}}) {
    KvStep s = hx.MakeStep(step, c.evict_rate, rng);
    hx.Upload(s);
    ASSERT_TRUE(hx.Append(s));
  }
  KvStep s = hx.MakeStep({{a, 1}, {b, 45}, {d, 70}}, c.evict_rate, rng);
  hx.Upload(s);
  ErrorStats e = RunAttention(hx, s, c.group, 1, rng);
  EXPECT_TRUE(CheckClose("dms_attention", Shape(c, "mixed L=703/37/0 n=1/45/70"), e, kMaxNmse,
                         kMaxAbs));
  if (MmaCase(c)) {
    for (Kernel k : TensorCoreKernels(c.head_dim)) {
      e = RunAttention(hx, s, c.group, 1, rng, k);
      EXPECT_TRUE(CheckClose(KernelName(k), Shape(c, "mixed L=703/37/0 n=1/45/70"), e,
                             kMmaMaxNmse, kMmaMaxAbs));
    }
  }
  ASSERT_TRUE(hx.Append(s));
  EXPECT_TRUE(hx.CompareState(a) && hx.CompareState(b) && hx.CompareState(d));
  KvStep dec = hx.MakeStep({{a, 1}, {b, 1}, {d, 1}}, c.evict_rate, rng);
  hx.Upload(dec);
  // 100: more splits than b's and d's keys (empty splits) and over 16 (the
  // merge takes the splits in rounds of 16).
  for (int splits : {1, 3, 100}) {
    e = RunAttention(hx, dec, c.group, splits, rng);
    EXPECT_TRUE(CheckClose("dms_attention",
                           Shape(c, "decode x3 splits=" + std::to_string(splits)), e, kMaxNmse,
                           kMaxAbs));
    if (cuda::DmsDecodeAttentionSupported(c.dtype, c.head_dim, c.group)) {
      e = RunAttention(hx, dec, c.group, splits, rng, Kernel::kDecode);
      EXPECT_TRUE(CheckClose("dms_decode_attention",
                             Shape(c, "decode x3 splits=" + std::to_string(splits)), e, kMaxNmse,
                             kMaxAbs));
    }
  }
}

TEST(AttentionOp, SweepMatchesTheCpuReference) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(2024);
  const double rates[] = {0.0, 0.5, 0.875, 1.0};
  int i = 0;
  for (cuda::KvDType dtype : {cuda::KvDType::kBF16, cuda::KvDType::kF32}) {
    for (int hd : {64, 128}) {
      for (int g : {1, 2, 4, 8}) {
        for (int w : {kDenseWindow, 0, 8, 512}) {
          const double p = w == kDenseWindow ? 0.0 : rates[i++ % 4];
          RunMixedBatchCase({hd, g, w, p, dtype}, rng);
        }
      }
    }
  }
}

TEST(AttentionOp, EvictionRatesAndSmallHeadDims) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(77);
  for (double p : {0.0, 0.5, 0.875, 1.0}) RunMixedBatchCase({128, 4, 8, p, cuda::KvDType::kBF16}, rng);
  for (int hd : {16, 32}) {
    for (int g : {1, 2, 4}) RunMixedBatchCase({hd, g, 4, 0.5, cuda::KvDType::kF32}, rng);
  }
}

// 20,000 cached tokens (W=512, 87.5% eviction, and dense): a 1,300-token
// prefill and decode with split-K forced and as the backend would choose.
TEST(AttentionOp, LongContextsAndSplitK) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(5);
  for (int w : {512, kDenseWindow}) {
    const Case c{128, 4, w, w == kDenseWindow ? 0.0 : 0.875, cuda::KvDType::kBF16};
    SCOPED_TRACE(Shape(c, ""));
    KvHarnessConfig cfg;
    cfg.num_kv_heads = 2;
    cfg.head_dim = 128;
    cfg.window = w;
    cfg.num_blocks = 2 * 2 * (20400 / 16 + 8);
    KvHarness hx(cfg);
    const SeqId a = hx.AddSequence();
    for (int n : {6000, 1, 7999, 3, 5997}) {
      KvStep s = hx.MakeStep({{a, n}}, c.evict_rate, rng);
      hx.Upload(s);
      ASSERT_TRUE(hx.Append(s));
    }
    const int retained = hx.cpu().View(a, cfg.layer, 0).length();
    // 1,300 tokens: its tiles past the first 513 queries walk the cached-slot list.
    KvStep pre = hx.MakeStep({{a, 1300}}, c.evict_rate, rng);
    hx.Upload(pre);
    ErrorStats e = RunAttention(hx, pre, c.group, 1, rng);
    EXPECT_TRUE(CheckClose("dms_attention",
                           Shape(c, "L=20000 (kept " + std::to_string(retained) + ") n=1300"), e,
                           kMaxNmse, kMaxAbs));
    for (Kernel k : TensorCoreKernels(c.head_dim)) {
      e = RunAttention(hx, pre, c.group, 1, rng, k);
      EXPECT_TRUE(CheckClose(KernelName(k),
                             Shape(c, "L=20000 (kept " + std::to_string(retained) + ") n=1300"), e,
                             kMmaMaxNmse, kMmaMaxAbs));
    }
    ASSERT_TRUE(hx.Append(pre));
    KvStep dec = hx.MakeStep({{a, 1}}, c.evict_rate, rng);
    hx.Upload(dec);
    for (int splits : {1, 7, 32, 80}) {
      e = RunAttention(hx, dec, c.group, splits, rng);
      EXPECT_TRUE(CheckClose("dms_attention",
                             Shape(c, "L=21300 decode splits=" + std::to_string(splits)), e,
                             kMaxNmse, kMaxAbs));
      e = RunAttention(hx, dec, c.group, splits, rng, Kernel::kDecode);
      EXPECT_TRUE(CheckClose("dms_decode_attention",
                             Shape(c, "L=21300 decode splits=" + std::to_string(splits)), e,
                             kMaxNmse, kMaxAbs));
    }
  }
}

// The streamed decode kernel over many streams of mixed lengths: every
// stream's cache grown in chunks to its length (1 .. 1,500, the window edges
// included), then one decode step of all of them, with split counts that
// leave some splits empty and some past the merge's round of 16.
void RunDecodeStreams(const Case& c, const std::vector<int>& lengths,
                      const std::vector<int>& split_counts, std::mt19937_64& rng) {
  int64_t total = 0;
  for (int n : lengths) total += n + 1;
  KvHarnessConfig cfg;
  cfg.num_kv_heads = 2;
  cfg.head_dim = c.head_dim;
  cfg.window = c.window;
  cfg.dtype = c.dtype;
  cfg.max_sequences = static_cast<int>(lengths.size()) + 1;
  cfg.num_blocks = static_cast<int>(2 * 2 * (total / 16 + 4 * lengths.size()) + 64);
  KvHarness hx(cfg);
  std::vector<SeqId> seqs;
  for (size_t i = 0; i < lengths.size(); ++i) seqs.push_back(hx.AddSequence());
  // Grow the caches: prefill chunks of up to 4,000 tokens, a few streams a step.
  std::vector<int> have(lengths.size(), 0);
  for (bool more = true; more;) {
    more = false;
    std::vector<std::pair<SeqId, int>> step;
    int rows = 0;
    for (size_t i = 0; i < lengths.size() && rows < 6000; ++i) {
      const int n = std::min(4000, lengths[i] - have[i]);
      if (n <= 0) continue;
      step.push_back({seqs[i], n});
      have[i] += n;
      rows += n;
      more = true;
    }
    if (step.empty()) break;
    KvStep s = hx.MakeStep(step, c.evict_rate, rng);
    hx.Upload(s);
    ASSERT_TRUE(hx.Append(s));
  }
  std::vector<std::pair<SeqId, int>> decode;
  for (SeqId s : seqs) decode.push_back({s, 1});
  KvStep dec = hx.MakeStep(decode, c.evict_rate, rng);
  hx.Upload(dec);
  const std::string what = std::to_string(lengths.size()) + " streams, up to " +
                           std::to_string(*std::max_element(lengths.begin(), lengths.end()));
  for (int splits : split_counts) {
    ErrorStats e = RunAttention(hx, dec, c.group, splits, rng, Kernel::kDecode);
    EXPECT_TRUE(CheckClose("dms_decode_attention",
                           Shape(c, what + " splits=" + std::to_string(splits)), e, kMaxNmse,
                           kMaxAbs));
  }
}

TEST(AttentionOp, DecodeKernelAcrossStreamsLengthsAndGroups) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(31);
  const std::vector<std::pair<int, double>> windows = {
      {kDenseWindow, 0.0}, {0, 0.5}, {16, 0.875}, {512, 1.0}, {8, 0.0}, {512, 0.875}};
  int i = 0;
  for (int hd : {64, 128}) {
    for (int g : {1, 2, 4, 8}) {
      const auto [w, p] = windows[i++ % windows.size()];
      std::vector<int> lengths = {1, 2, 17, 31, 32, 33, w + 1, w + 2, w + 3};
      for (int k = 0; k < 28; ++k) lengths.push_back(1 + static_cast<int>(rng() % 1500));
      for (int& n : lengths) n = std::max(n, 1);
      RunDecodeStreams({hd, g, w, p, cuda::KvDType::kBF16}, lengths, {1, 5, 40}, rng);
    }
  }
  // 256 streams (the most a step takes), and 40,000 tokens in one.
  std::vector<int> many;
  for (int k = 0; k < 256; ++k) many.push_back(1 + static_cast<int>(rng() % 300));
  RunDecodeStreams({128, 4, 512, 0.875, cuda::KvDType::kBF16}, many, {1, 2}, rng);
  RunDecodeStreams({128, 4, 512, 0.875, cuda::KvDType::kBF16}, {40000, 3, 700}, {1, 16, 64}, rng);
  RunDecodeStreams({64, 8, kDenseWindow, 0.0, cuda::KvDType::kBF16}, {40000}, {1, 33}, rng);
}

// Two KV heads of c's shape, blocks for the long tests' 3,600 tokens.
KvHarnessConfig LongPrefillConfig(const Case& c) {
  KvHarnessConfig cfg;
  cfg.num_kv_heads = 2;
  cfg.head_dim = c.head_dim;
  cfg.window = c.window;
  cfg.dtype = c.dtype;
  cfg.num_blocks = 2 * 2 * (3700 / 16 + 8);
  return cfg;
}

// Long prefills on the tensor-core kernel: a fresh 2,500-token chunk (every
// key tile of the chunk, causal and window edges inside tiles, lengths off
// the tile size), then a 1,100-token chunk on its compacted cache; eviction
// rate 1 makes most key tiles invisible to a query tile (skipped), 0.875 is
// the benchmark's rate. The SIMT kernel runs the same steps as a cross-check.
TEST(AttentionOp, TensorCoreLongPrefills) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(11);
  g_cached_lists = 0;
  struct Long { int hd, g, w; double p; };
  for (const Long& lc : {Long{128, 4, 512, 0.875}, Long{128, 4, 512, 1.0}, Long{64, 8, 64, 0.5},
                         Long{128, 1, kDenseWindow, 0.0}, Long{64, 2, 0, 0.875},
                         Long{128, 16, 100, 0.875}}) {
    const Case c{lc.hd, lc.g, lc.w, lc.p, cuda::KvDType::kBF16};
    SCOPED_TRACE(Shape(c, ""));
    const KvHarnessConfig cfg = LongPrefillConfig(c);
    KvHarness hx(cfg);
    const SeqId a = hx.AddSequence();
    for (int n : {2500, 1100}) {
      KvStep s = hx.MakeStep({{a, n}}, c.evict_rate, rng);
      hx.Upload(s);
      const std::string what = "L=" + std::to_string(hx.Tokens(a)) + " n=" + std::to_string(n);
      ErrorStats e;
      for (Kernel k : TensorCoreKernels(c.head_dim)) {
        e = RunAttention(hx, s, c.group, 1, rng, k);
        EXPECT_TRUE(CheckClose(KernelName(k), Shape(c, what), e, kMmaMaxNmse, kMmaMaxAbs));
      }
      e = RunAttention(hx, s, c.group, 1, rng);
      EXPECT_TRUE(CheckClose("dms_attention", Shape(c, what), e, kMaxNmse, kMaxAbs));
      ASSERT_TRUE(hx.Append(s));
    }
  }
  // The 1,100-token chunks on a window of 512 or less: their later tiles
  // walked cached-slot lists.
  EXPECT_GT(g_cached_lists, 0);
}

// Scores that climb or fall along the key positions by far more than random
// data's: q and k with a positive mean and each key scaled by 1 + slope *
// position (falling: by the distance to the last position), so in the
// tensor-core kernels' walk (oldest key first) a row's max moves by tens to
// thousands (base 2) from one key tile to the next. Climbing steeply, nearly
// every tile's weights against the running max would pass the softmax's
// 2^40 bound on a lane's sum and the tile takes the redo path (the scores
// again, the full online step), which random scores never reach; slope 1/64
// puts tiles on both sides of it; falling, the first tiles hold the max and
// the later weights underflow to 0. q is bf16-exact (QueryValues), K and V
// bf16 on both sides, so the only differences left are the summation order
// and P's rounding.
TEST(AttentionOp, TensorCoreScoresFarAboveTheRunningMax) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(23);
  struct Ramp { int hd, g, w; double p; float slope; bool falling; };
  for (const Ramp& r : {Ramp{128, 4, 512, 0.875, 1.0f / 16, false},
                        Ramp{128, 4, kDenseWindow, 0.0, 1.0f / 64, false},
                        Ramp{128, 2, 512, 0.5, 1.0f / 16, true},
                        Ramp{64, 8, 64, 0.875, 1.0f / 16, false}}) {
    const Case c{r.hd, r.g, r.w, r.p, cuda::KvDType::kBF16};
    SCOPED_TRACE(Shape(c, std::string(r.falling ? "falling" : "climbing") + " slope " +
                              std::to_string(r.slope)));
    const KvHarnessConfig cfg = LongPrefillConfig(c);
    KvHarness hx(cfg);
    const SeqId a = hx.AddSequence();
    constexpr int kLastPos = 3600;
    for (int n : {2500, 1100}) {
      KvStep s = hx.MakeStep({{a, n}}, c.evict_rate, rng);
      const int first = hx.Tokens(a);
      for (int t = 0; t < n; ++t) {
        const int pos = first + t;
        const float scale = 1.0f + r.slope * static_cast<float>(r.falling ? kLastPos - pos : pos);
        for (int i = 0; i < cfg.num_kv_heads * r.hd; ++i) {
          float& k = s.k[(static_cast<size_t>(t) * cfg.num_kv_heads * r.hd) + i];
          k = RoundBf16((k + 1.0f) * scale);
        }
      }
      hx.Upload(s);
      const std::string what = "L=" + std::to_string(first) + " n=" + std::to_string(n);
      for (Kernel k : TensorCoreKernels(c.head_dim)) {
        const ErrorStats e = RunAttention(hx, s, c.group, 1, rng, k, {-1.0f, 3.0f, true});
        EXPECT_TRUE(CheckClose(KernelName(k), Shape(c, what), e, kMmaMaxNmse, kMmaMaxAbs));
      }
      ASSERT_TRUE(hx.Append(s));
    }
  }
}

// LaunchDmsKeptKeys on its own, bit for bit: chunk lengths around its
// granularity (a warp of its 1,024 threads owns ceil(n / 1024) * 32 keys;
// 1, 31 and 33 keys leave most warps empty), several chunks a step, 1 to 8
// heads, eviction rates 0 to 1, up to past 32K keys.
TEST(AttentionOp, KeptKeysAcrossChunkLengths) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(5);
  for (int hkv : {1, 3, 8}) {
    for (double p : {0.0, 0.875, 1.0}) {
      SCOPED_TRACE("hkv=" + std::to_string(hkv) + " p=" + std::to_string(p));
      KvHarnessConfig cfg;
      cfg.num_kv_heads = hkv;
      cfg.window = 512;
      KvHarness hx(cfg);
      const SeqId a = hx.AddSequence(), b = hx.AddSequence(), d = hx.AddSequence();
      const std::vector<std::vector<std::pair<SeqId, int>>> steps = {
          {{a, 1}, {b, 31}, {d, 33}},      {{a, 1023}, {b, 1024}, {d, 1025}},
          {{a, 5000}, {b, 2}, {d, 4097}},  {{a, 32768 + 77}}};
      for (const auto& chunks : steps) {
        const KvStep s = hx.MakeStep(chunks, p, rng);
        hx.Upload(s);
        DevArray<int32_t> d_index, d_count;
        RunKeptKeys(s, hkv, hx.d_chunks(), hx.d_dec(), d_index, d_count);
      }
    }
  }
}

// The GPU suite runs on H100/H200: there the wgmma core must be what the
// backend runs (a build without sm_90a code would fall back silently).
TEST(AttentionOp, WgmmaCoreRunsOnHopper) {
  DMS_SKIP_WITHOUT_GPU();
  int major = 0, minor = 0;
  ASSERT_EQ(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0), cudaSuccess);
  ASSERT_EQ(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, 0), cudaSuccess);
  if (major != 9 || minor != 0) GTEST_SKIP() << "not an sm_90 device";
  EXPECT_TRUE(cuda::DmsAttentionWgmmaAvailable());
}

TEST(AttentionOp, TensorCoreKernelRejectsWhatItDoesNotSupport) {
  EXPECT_FALSE(cuda::DmsAttentionMmaSupported(cuda::KvDType::kF32, 128, 4));
  EXPECT_FALSE(cuda::DmsAttentionMmaSupported(cuda::KvDType::kBF16, 32, 4));
  EXPECT_TRUE(cuda::DmsAttentionMmaSupported(cuda::KvDType::kBF16, 64, 8));
  cuda::AttentionParams p;
  p.num_tiles = 1;
  p.num_q_heads = 8;
  p.kv.num_kv_heads = 2;
  p.kv.head_dim = 128;
  p.kv.dtype = cuda::KvDType::kBF16;
  p.num_splits = 2;  // split-K is the SIMT kernel's
  EXPECT_EQ(cuda::LaunchDmsAttentionMma(p, nullptr), cudaErrorInvalidValue);
  p.num_splits = 1;
  p.kv.dtype = cuda::KvDType::kF32;
  EXPECT_EQ(cuda::LaunchDmsAttentionMma(p, nullptr), cudaErrorInvalidValue);
}

}  // namespace
}  // namespace dms::gpu_testing
