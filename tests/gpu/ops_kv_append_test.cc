// KV append on the device against DmsKvCache::Append, bit for bit: every
// head's length, every slot's position and K/V bits, and the ring's marks,
// over windows, eviction rates, chunkings (single tokens, chunks longer than
// the window, lengths that are not multiples of the page size) and batches
// of sequences of mixed lengths.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <string>

#include "tests/gpu/kv_harness.h"

namespace dms::gpu_testing {
namespace {

struct AppendCase {
  int window;
  double evict_rate;
  cuda::KvDType dtype;
  int head_dim;
};

std::string Name(const AppendCase& c) {
  char buf[96];
  std::snprintf(buf, sizeof(buf), "W=%d p=%.3f kv=%s hd=%d", c.window, c.evict_rate,
                c.dtype == cuda::KvDType::kBF16 ? "bf16" : "f32", c.head_dim);
  return buf;
}

TEST(KvAppendOp, MatchesTheCpuCacheBitForBit) {
  DMS_SKIP_WITHOUT_GPU();
  std::vector<AppendCase> cases;
  for (int w : {kDenseWindow, 0, 1, 8, 512}) {
    for (double p : {0.0, 0.5, 0.875, 1.0}) {
      if (w == kDenseWindow && p > 0) continue;
      cases.push_back({w, p, cuda::KvDType::kBF16, 64});
    }
  }
  cases.push_back({8, 0.5, cuda::KvDType::kF32, 128});
  cases.push_back({512, 0.875, cuda::KvDType::kF32, 16});
  std::mt19937_64 rng(1234);
  for (const AppendCase& c : cases) {
    SCOPED_TRACE(Name(c));
    KvHarnessConfig cfg;
    cfg.window = c.window;
    cfg.head_dim = c.head_dim;
    cfg.dtype = c.dtype;
    cfg.num_blocks = 2 * 2 * 3 * (3000 / 16 + 8);
    KvHarness hx(cfg);
    const SeqId a = hx.AddSequence(), b = hx.AddSequence(), d = hx.AddSequence();
    // Mixed steps: single tokens, chunks shorter and longer than W+1, chunks
    // that end off a page boundary, several sequences per step.
    const std::vector<std::vector<std::pair<SeqId, int>>> steps = {
        {{a, 1}},         {{a, 1}, {b, 7}},  {{a, 13}, {b, 1}, {d, 600}},
        {{a, 1}},         {{b, 515}},        {{a, 1}, {b, 1}, {d, 1}},
        {{a, 1030}, {d, 3}}, {{b, 1}},      {{a, 2}, {b, 9}, {d, 517}},
    };
    bool ok = true;
    for (const auto& step : steps) {
      KvStep s = hx.MakeStep(step, c.evict_rate, rng);
      hx.Upload(s);
      ASSERT_TRUE(hx.Append(s));
      for (SeqId q : {a, b, d}) {
        const auto r = hx.CompareState(q);
        EXPECT_TRUE(r) << "sequence " << q;
        ok = ok && r;
      }
    }
    char shape[128];
    std::snprintf(shape, sizeof(shape), "%s tokens=%d/%d/%d", Name(c).c_str(), hx.Tokens(a),
                  hx.Tokens(b), hx.Tokens(d));
    Report("kv_append", shape, "lengths, positions, K/V bits, marks", ok);
  }
}

// A long single sequence: 20,000 tokens in uneven chunks, W=512, 87.5% eviction.
TEST(KvAppendOp, LongSequenceMatches) {
  DMS_SKIP_WITHOUT_GPU();
  KvHarnessConfig cfg;
  cfg.window = 512;
  cfg.head_dim = 128;
  cfg.num_kv_heads = 2;
  cfg.num_blocks = 2 * 2 * (20000 / 16 + 8);
  KvHarness hx(cfg);
  const SeqId a = hx.AddSequence();
  std::mt19937_64 rng(99);
  int done = 0;
  const int sizes[] = {4093, 1, 1, 2047, 513, 1, 7000, 1, 6343};
  for (int n : sizes) {
    KvStep s = hx.MakeStep({{a, n}}, 0.875, rng);
    hx.Upload(s);
    ASSERT_TRUE(hx.Append(s));
    done += n;
  }
  ASSERT_EQ(done, 20000);
  const auto r = hx.CompareState(a);
  EXPECT_TRUE(r);
  Report("kv_append", "W=512 p=0.875 kv=bf16 hd=128 tokens=20000 (9 chunks)",
         "lengths, positions, K/V bits, marks", r);
}

CudaKvConfig SizingConfig(int layers, int kv_heads, int window, int sequences, int blocks_per_head) {
  CudaKvConfig c;
  c.num_layers = layers;
  c.num_kv_heads = kv_heads;
  c.head_dim = 64;
  c.window = window;
  c.block_size = 16;
  c.max_sequences = sequences;
  c.max_blocks_per_head = blocks_per_head;
  return c;
}

// Sizing the pool by a byte budget (--kv-memory as a share of free GPU
// memory) counts the whole cache: the blocks chosen fit the budget and two
// more do not. The arithmetic needs no GPU; where one exists, the cache
// Create allocates is exactly DeviceBytesFor.
TEST(KvCacheSizing, BlocksWithinABudgetFitAndTwoMoreDoNot) {
  const bool gpu = NoGpuReason().empty();
  for (cuda::KvDType dtype : {cuda::KvDType::kBF16, cuda::KvDType::kF32}) {
    for (int window : {16, kDenseWindow}) {
      for (int64_t budget : {int64_t{1} << 20, int64_t{7000013}, int64_t{1} << 30}) {
        CudaKvConfig c = SizingConfig(/*layers=*/3, /*kv_heads=*/2, window, /*sequences=*/5, /*blocks_per_head=*/100);
        c.dtype = dtype;
        const int n = CudaKvCache::BlocksWithin(c, budget);
        SCOPED_TRACE(::testing::Message() << "budget " << budget << " window " << window << " blocks " << n);
        ASSERT_GT(n, 1);
        c.num_blocks = n;
        EXPECT_LE(CudaKvCache::DeviceBytesFor(c), budget);
        if (gpu) {
          auto cache = CudaKvCache::Create(c);
          ASSERT_TRUE(cache.ok()) << cache.status().ToString();
          EXPECT_EQ(static_cast<int64_t>((*cache)->device_bytes()), CudaKvCache::DeviceBytesFor(c));
        }
        c.num_blocks = n + 2;
        EXPECT_GT(CudaKvCache::DeviceBytesFor(c), budget);
      }
    }
  }
  const CudaKvConfig c = SizingConfig(1, 1, kDenseWindow, 1, 1);
  EXPECT_EQ(CudaKvCache::BlocksWithin(c, 0), 1) << "at least one block, whatever the budget";
}

}  // namespace
}  // namespace dms::gpu_testing
