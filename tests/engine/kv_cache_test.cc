// Property tests of the DMS KV cache against a brute-force model of spec
// sections 3-4: after every append the cache holds exactly the retained set,
// with the right contents, and block accounting returns to zero at the end.
#include "engine/kv/dms_kv_cache.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <set>

#include "engine/core/dms_rules.h"
#include "engine/kv/kv_block_storage.h"

namespace dms {
namespace {

// Deterministic fake K/V content for (seq, layer, head, pos).
float Content(int seq, int layer, int head, int pos, int d, bool is_v) {
  return static_cast<float>(((seq * 131 + layer) * 17 + head) * 100000 + pos * 10 + d) +
         (is_v ? 0.5f : 0.0f);
}

struct Truth {
  std::vector<std::vector<uint8_t>> d;  // [layer*heads + head][pos]
};

void CheckHead(const DmsKvCache& cache, SeqId seq, int s, int layer, int head, int window,
               const std::vector<uint8_t>& d, int hd) {
  HeadCacheView view = cache.View(seq, layer, head);
  const int t = static_cast<int>(d.size());
  ASSERT_EQ(view.num_tokens(), t);
  const int64_t want = DmsRetainedCount(t, window, [&](int64_t j) { return d[j] != 0; });
  ASSERT_EQ(view.length(), want) << "layer " << layer << " head " << head << " T " << t;
  // The cached positions are exactly the keys visible to the newest query.
  std::set<int> expect, got;
  for (int j = 0; j < t; ++j) {
    const bool succ = j + 1 < t ? d[j + 1] != 0 : false;
    if (DmsKeyVisible(t - 1, j, succ, window)) expect.insert(j);
  }
  for (int slot = 0; slot < view.length(); ++slot) {
    const int p = view.pos(slot);
    ASSERT_TRUE(got.insert(p).second) << "position " << p << " cached twice";
    for (int e = 0; e < hd; ++e) {
      ASSERT_EQ(view.k(slot)[e], Content(s, layer, head, p, e, false));
      ASSERT_EQ(view.v(slot)[e], Content(s, layer, head, p, e, true));
    }
    // Marks of cached positions equal the successor's decision.
    const bool succ = p + 1 < t ? d[p + 1] != 0 : false;
    ASSERT_EQ(view.EvictMarked(p), window >= 0 && succ && p >= t - window - 1) << p;
  }
  ASSERT_EQ(expect, got);
  ASSERT_LE(view.length(), static_cast<int>(view.blocks().size()) * cache.config().block_size);
}

class KvCacheProperty : public ::testing::TestWithParam<std::tuple<int, int, double>> {};

TEST_P(KvCacheProperty, HoldsExactlyTheRetainedSet) {
  const auto [window, block_size, evict_rate] = GetParam();
  KvCacheConfig cfg;
  cfg.num_layers = 2;
  cfg.num_kv_heads = 3;
  cfg.head_dim = 4;
  cfg.window = window;
  cfg.block_size = block_size;
  cfg.num_blocks = 4000;
  DmsKvCache cache(cfg);
  std::mt19937 rng(window * 1000 + block_size);
  std::bernoulli_distribution coin(evict_rate);
  std::uniform_int_distribution<int> chunk_len(1, 20);

  const int kSeqs = 3;
  std::vector<SeqId> ids;
  std::vector<std::vector<std::vector<uint8_t>>> d(kSeqs, std::vector<std::vector<uint8_t>>(6));
  for (int s = 0; s < kSeqs; ++s) ids.push_back(cache.AddSequence());
  // Interleave chunks of different sequences, as a batched engine would.
  for (int round = 0; round < 12; ++round) {
    for (int s = 0; s < kSeqs; ++s) {
      const int n = round % 3 == 2 ? 1 : chunk_len(rng);
      ASSERT_TRUE(cache.Reserve(ids[s], n).ok());
      for (int layer = 0; layer < 2; ++layer) {
        for (int head = 0; head < 3; ++head) {
          auto& dh = d[s][layer * 3 + head];
          for (int i = 0; i < n; ++i) {
            const int pos = static_cast<int>(dh.size());
            const bool dec = pos > 0 && coin(rng);
            float k[4], v[4];
            for (int e = 0; e < 4; ++e) {
              k[e] = Content(s, layer, head, pos, e, false);
              v[e] = Content(s, layer, head, pos, e, true);
            }
            ASSERT_TRUE(cache.Append(ids[s], layer, head, k, v, dec).ok());
            dh.push_back(dec);
            CheckHead(cache, ids[s], s, layer, head, window, dh, 4);
          }
        }
      }
      cache.CommitStep(ids[s], n);
      SequenceKvStats st = cache.SequenceStats(ids[s]);
      ASSERT_EQ(st.logical_tokens, static_cast<int>(d[s][0].size()));
      // After a step each head holds exactly the blocks its entries need.
      int want_blocks = 0;
      for (const auto& row : st.retained)
        for (int r : row) want_blocks += (r + block_size - 1) / block_size;
      ASSERT_EQ(st.blocks, want_blocks);
    }
  }
  // Pool accounting: used blocks are exactly what the heads hold; zero at the end.
  KvPoolStats ps = cache.PoolStats();
  int held = 0;
  for (SeqId id : ids) held += cache.SequenceStats(id).blocks;
  EXPECT_EQ(ps.blocks_used, held);
  EXPECT_EQ(ps.blocks_used + ps.blocks_free, cfg.num_blocks);
  for (SeqId id : ids) cache.FreeSequence(id);
  ps = cache.PoolStats();
  EXPECT_EQ(ps.blocks_used, 0);
  EXPECT_EQ(ps.blocks_free, cfg.num_blocks);
  EXPECT_EQ(ps.num_sequences, 0);
  EXPECT_EQ(ps.retained_tokens, 0);
}

INSTANTIATE_TEST_SUITE_P(Windows, KvCacheProperty,
                         ::testing::Combine(::testing::Values(kDenseWindow, 0, 1, 4, 16),
                                            ::testing::Values(1, 4, 16),
                                            ::testing::Values(0.0, 0.5, 0.9, 1.0)));

// Slots of a block handed out by Reserve, fresh or reused, hold no position.
TEST(KvCache, ReservedBlocksHoldNoPositions) {
  KvCacheConfig cfg{1, 1, 3, kDenseWindow, 2, 4};  // 4 blocks of 2 slots, head_dim 3
  DmsKvCache cache(cfg);
  const float kv[3] = {1, 2, 3};
  const SeqId a = cache.AddSequence(), b = cache.AddSequence();
  ASSERT_TRUE(cache.Reserve(a, 4).ok());
  for (int t = 0; t < 4; ++t) ASSERT_TRUE(cache.Append(a, 0, 0, kv, kv, false).ok());
  cache.CommitStep(a, 4);
  cache.FreeSequence(a);  // its blocks 0 and 1 go back
  ASSERT_TRUE(cache.Reserve(b, 3).ok());
  const std::vector<int32_t>& table = cache.View(b, 0, 0).blocks();
  EXPECT_EQ(table, (std::vector<int32_t>{1, 0}));
  ASSERT_TRUE(cache.Append(b, 0, 0, kv, kv, false).ok());
  const HeadCacheView view = cache.View(b, 0, 0);
  EXPECT_EQ(view.pos(0), 0);
  EXPECT_EQ(view.pos(1), -1);
  EXPECT_EQ(view.pos(2), -1);
}

// Resident memory of this process, from /proc/self/statm (pages).
int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * sysconf(_SC_PAGESIZE);
}

// The storage is an untouched mapping: a 4 GB pool costs no resident memory
// until blocks are written; one beyond the 128 TiB user address space cannot
// be mapped, and the cache over it says so and hands out nothing.
TEST(KvBlockStorage, StorageIsMappedNotTouched) {
  const int64_t before = ResidentBytes();
  KvBlockStorage big(1 << 18, 16, 128);  // 4.3 GB of K/V
  ASSERT_TRUE(big.ok());
  big.ResetPositions(7);
  big.k(7, 15)[127] = 1.5f;
  EXPECT_EQ(big.k(7, 15)[127], 1.5f);
  EXPECT_EQ(big.pos(7, 3), -1);
  EXPECT_LT(ResidentBytes() - before, int64_t{64} << 20);
  KvBlockStorage impossible(1 << 20, 1 << 16, 512);  // ~280 TB
  EXPECT_FALSE(impossible.ok());
  DmsKvCache cache(KvCacheConfig{1, 1, 512, kDenseWindow, 1 << 16, 1 << 20});
  EXPECT_FALSE(cache.ok());
  EXPECT_EQ(cache.PoolStats().blocks_free, 0);
  EXPECT_EQ(cache.Reserve(cache.AddSequence(), 1).code(), StatusCode::kResourceExhausted);
}

TEST(KvCache, ReserveFailsCleanlyWhenThePoolIsFull) {
  KvCacheConfig cfg{1, 2, 4, 4, 4, 3};  // 3 blocks of 4 slots, 2 heads
  DmsKvCache cache(cfg);
  SeqId s = cache.AddSequence();
  Status st = cache.Reserve(s, 5);  // 2 heads x 2 blocks = 4 > 3
  ASSERT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(st.message(), "KV cache: 5 new tokens need 4 more blocks but only 3 of 3 are free");
  EXPECT_EQ(cache.PoolStats().blocks_used, 0);
  ASSERT_TRUE(cache.Reserve(s, 4).ok());
  EXPECT_EQ(cache.PoolStats().blocks_used, 2);
}

TEST(KvCache, EvictionKeepsMemoryFlat) {
  // Everything evicted: a head never holds more than W+1 entries.
  KvCacheConfig cfg{1, 1, 2, 3, 2, 64};
  DmsKvCache cache(cfg);
  SeqId s = cache.AddSequence();
  float kv[2] = {1, 2};
  for (int t = 0; t < 100; ++t) {
    ASSERT_TRUE(cache.Reserve(s, 1).ok());
    ASSERT_TRUE(cache.Append(s, 0, 0, kv, kv, true).ok());
    cache.CommitStep(s, 1);
    EXPECT_LE(cache.View(s, 0, 0).length(), 4);
  }
  EXPECT_EQ(cache.PoolStats().blocks_used, 2);
  SequenceKvStats st = cache.SequenceStats(s);
  EXPECT_EQ(st.retained[0][0], 4);
  EXPECT_DOUBLE_EQ(st.compression_ratio, 25.0);
}

// The window ring grows with the tokens appended: a window as long as the
// longest context allowed (2^20) costs nothing up front, where 36 layers x 8
// KV heads of 2^20 + 1 ring entries would be 1.5 GB a sequence.
TEST(KvCache, WindowRingGrowsWithTheTokens) {
  KvCacheConfig cfg{36, 8, 2, 1 << 20, 16, 36 * 8};
  DmsKvCache cache(cfg);
  const int64_t before = ResidentBytes();
  SeqId s = cache.AddSequence();
  ASSERT_TRUE(cache.Reserve(s, 3).ok());
  float kv[2] = {1, 2};
  for (int t = 0; t < 3; ++t) {
    for (int l = 0; l < cfg.num_layers; ++l) {
      for (int h = 0; h < cfg.num_kv_heads; ++h) {
        ASSERT_TRUE(cache.Append(s, l, h, kv, kv, /*decision=*/t == 2).ok());
      }
    }
  }
  EXPECT_LT(ResidentBytes() - before, int64_t{64} << 20);
  // Nothing has left the window: all 3 kept; position 1 carries its successor's mark.
  HeadCacheView view = cache.View(s, 35, 7);
  EXPECT_EQ(view.length(), 3);
  EXPECT_FALSE(view.EvictMarked(0));
  EXPECT_TRUE(view.EvictMarked(1));
  EXPECT_FALSE(view.EvictMarked(2));
}

}  // namespace
}  // namespace dms
