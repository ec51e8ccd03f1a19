// DMS attention on the device against the CPU reference (DmsAttention over
// DmsKvCache), both reading the same cache state and the same chunk: swept
// head_dim, GQA group, window, eviction rate and cache dtype; batches that
// mix a decode token, a prefill on a cached prefix and a fresh prefill;
// caches up to 20,000 tokens; split-K forced and automatic.
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

ThreadPool& Pool() {
  static ThreadPool pool(0);
  return pool;
}

// Runs one uploaded step's attention on both sides (the caches as they are,
// before the step is appended) and compares.
ErrorStats RunAttention(KvHarness& hx, const KvStep& s, int group, int splits,
                        std::mt19937_64& rng) {
  const KvHarnessConfig& c = hx.config();
  const int hkv = c.num_kv_heads, hq = hkv * group, hd = c.head_dim;
  std::vector<float> q = RandomUniform(static_cast<size_t>(s.num_tokens) * hq * hd, rng, -2, 2);

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
  const int per_tile = std::max(1, cuda::kAttnMaxRows / group);
  for (size_t i = 0; i < s.chunks.size(); ++i) {
    for (int b = 0; b < s.chunks[i].n; b += per_tile) {
      tiles.push_back({static_cast<int32_t>(i), b, std::min(per_tile, s.chunks[i].n - b)});
    }
  }
  DevArray<float> d_q, d_out(q.size()), d_po, d_pml;
  d_q.Upload(q);
  DevArray<cuda::AttnTile> d_tiles;
  d_tiles.Upload(tiles);
  d_po.Resize(static_cast<size_t>(splits) * q.size());
  d_pml.Resize(static_cast<size_t>(splits) * s.num_tokens * hq * 2);
  cuda::AttentionParams p;
  p.q = d_q.get();
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
  d_out.Poison();
  const cudaError_t err = cuda::LaunchDmsAttention(p, nullptr);
  EXPECT_EQ(err, cudaSuccess) << cudaGetErrorString(err);
  const cudaError_t sync = cudaDeviceSynchronize();
  EXPECT_EQ(sync, cudaSuccess) << cudaGetErrorString(sync);
  return Compare(d_out.Download(), ref);
}

struct Case {
  int head_dim, group, window;
  double evict_rate;
  cuda::KvDType dtype;
};

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
  ASSERT_TRUE(hx.Append(s));
  EXPECT_TRUE(hx.CompareState(a) && hx.CompareState(b) && hx.CompareState(d));
  KvStep dec = hx.MakeStep({{a, 1}, {b, 1}, {d, 1}}, c.evict_rate, rng);
  hx.Upload(dec);
  for (int splits : {1, 3}) {
    e = RunAttention(hx, dec, c.group, splits, rng);
    EXPECT_TRUE(CheckClose("dms_attention",
                           Shape(c, "decode x3 splits=" + std::to_string(splits)), e, kMaxNmse,
                           kMaxAbs));
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

// 20,000 cached tokens (W=512, 87.5% eviction, and dense): a 300-token
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
    KvStep pre = hx.MakeStep({{a, 300}}, c.evict_rate, rng);
    hx.Upload(pre);
    ErrorStats e = RunAttention(hx, pre, c.group, 1, rng);
    EXPECT_TRUE(CheckClose("dms_attention",
                           Shape(c, "L=20000 (kept " + std::to_string(retained) + ") n=300"), e,
                           kMaxNmse, kMaxAbs));
    ASSERT_TRUE(hx.Append(pre));
    KvStep dec = hx.MakeStep({{a, 1}}, c.evict_rate, rng);
    hx.Upload(dec);
    for (int splits : {1, 7, 32, 80}) {
      e = RunAttention(hx, dec, c.group, splits, rng);
      EXPECT_TRUE(CheckClose("dms_attention",
                             Shape(c, "L=20300 decode splits=" + std::to_string(splits)), e,
                             kMaxNmse, kMaxAbs));
    }
  }
}

}  // namespace
}  // namespace dms::gpu_testing
