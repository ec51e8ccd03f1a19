// KvBlockManager: allocation order, reservation and commit, bounded tables,
// reference-counted sharing with copy-on-write, compaction checks, and the
// capacity projection (kv_capacity.h) the scheduler and the server share.
#include "engine/kv/kv_block_manager.h"

#include <gtest/gtest.h>

#include <vector>

#include "engine/kv/kv_capacity.h"

namespace dms {
namespace {

KvBlockManagerConfig Config(int layers, int heads, int block_size, int blocks) {
  KvBlockManagerConfig c;
  c.num_layers = layers;
  c.num_kv_heads = heads;
  c.block_size = block_size;
  c.num_blocks = blocks;
  return c;
}

// Blocks never handed out go lazily from id 0 up; returned ones come back
// first, the last returned first (what a stack pre-filled with every id gave).
TEST(KvBlockManager, LowIdsFirstThenReturnedBlocksLastFirst) {
  KvBlockManager m(Config(1, 1, 2, 4));
  const SeqId a = *m.AddSequence();
  ASSERT_TRUE(m.Reserve(a, 6).ok());  // 3 blocks
  EXPECT_EQ(m.PageTable(a, 0), (std::vector<int32_t>{0, 1, 2}));
  EXPECT_EQ(m.num_free_blocks(), 1);
  m.CommitStep(a, 6, std::vector<int32_t>{2});  // eviction left 2 slots: blocks 1, 2 go back
  EXPECT_EQ(m.PageTable(a, 0), (std::vector<int32_t>{0}));
  EXPECT_EQ(m.LogicalTokens(a), 6);
  const SeqId b = *m.AddSequence();
  ASSERT_TRUE(m.Reserve(b, 6).ok());
  EXPECT_EQ(m.PageTable(b, 0), (std::vector<int32_t>{1, 2, 3}));
  Status full = m.Reserve(a, 1);
  ASSERT_EQ(full.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(full.message(), "KV cache: 1 new tokens need 1 more blocks but only 0 of 4 are free");
  EXPECT_EQ(m.PageTable(a, 0).size(), 1u);  // nothing allocated
}

// Reserve queues one table write per new entry, in head then position order;
// a bounded page table refuses before allocating anything.
TEST(KvBlockManager, TableWritesAndBoundedTables) {
  KvBlockManagerConfig c = Config(2, 1, 4, 100);
  c.max_blocks_per_head = 2;
  c.max_sequences = 2;
  KvBlockManager m(c);
  const SeqId a = *m.AddSequence();
  ASSERT_TRUE(m.Reserve(a, 5).ok());
  ASSERT_EQ(m.table_writes().size(), 4u);
  EXPECT_EQ(m.table_writes()[1].head, 0);
  EXPECT_EQ(m.table_writes()[1].position, 1);
  EXPECT_EQ(m.table_writes()[2].head, 1);
  EXPECT_EQ(m.table_writes()[2].block, 2);
  m.ClearTableWrites();
  Status st = m.Reserve(a, 9);
  ASSERT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(st.message(),
            "KV cache: a head of sequence 0 would need 3 blocks, more than its page table holds "
            "(2)");
  EXPECT_TRUE(m.table_writes().empty());
  EXPECT_EQ(m.num_free_blocks(), 96);
  ASSERT_TRUE(m.AddSequence().ok());
  StatusOr<SeqId> third = m.AddSequence();
  ASSERT_EQ(third.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(third.status().message(),
            "KV cache: all 2 sequence slots are in use (raise max_sequences)");
  m.FreeSequence(a);
  EXPECT_EQ(*m.AddSequence(), a);  // the freed id comes back
}

// A fork shares every block; writing copies only the shared blocks at and
// past the written slot; the pool counts each block once; freeing the holders
// in any order returns everything.
TEST(KvBlockManager, ForkSharesBlocksAndWritesCopyThem) {
  KvBlockManager m(Config(1, 2, 4, 32));
  const SeqId a = *m.AddSequence();
  ASSERT_TRUE(m.Reserve(a, 10).ok());  // 3 blocks a head
  m.CommitStep(a, 10, std::vector<int32_t>{10, 9});
  EXPECT_EQ(m.PoolStats().blocks_used, 6);
  const SeqId b = *m.Fork(a);
  EXPECT_EQ(m.PageTable(b, 0), m.PageTable(a, 0));
  EXPECT_EQ(m.Length(b, 1), 9);
  EXPECT_EQ(m.LogicalTokens(b), 10);
  KvPoolStats ps = m.PoolStats();
  EXPECT_EQ(ps.blocks_used, 6);
  EXPECT_EQ(ps.shared_blocks, 6);
  EXPECT_EQ(ps.num_sequences, 2);
  for (int32_t blk : m.PageTable(a, 0)) EXPECT_EQ(m.RefCount(blk), 2);

  std::vector<KvBlockManager::BlockCopy> copies;
  const std::vector<int32_t> before = m.PageTable(b, 0);
  ASSERT_TRUE(m.MakeWritable(b, 0, 5, &copies).ok());  // slots 5.. live in blocks 1 and 2
  ASSERT_EQ(copies.size(), 2u);
  EXPECT_EQ(copies[0].from, before[1]);
  EXPECT_EQ(copies[1].from, before[2]);
  EXPECT_EQ(m.PageTable(b, 0)[0], before[0]);
  EXPECT_EQ(m.PageTable(b, 0)[1], copies[0].to);
  EXPECT_EQ(m.RefCount(before[1]), 1);
  EXPECT_EQ(m.RefCount(copies[0].to), 1);
  EXPECT_EQ(m.PoolStats().shared_blocks, 4);
  EXPECT_EQ(m.PoolStats().blocks_used, 8);
  copies.clear();
  ASSERT_TRUE(m.MakeWritable(b, 0, 0, &copies).ok());  // only block 0 is still shared
  EXPECT_EQ(copies.size(), 1u);
  copies.clear();
  ASSERT_TRUE(m.MakeWritable(a, 0, 0, &copies).ok());  // a's blocks are its own again
  EXPECT_TRUE(copies.empty());

  m.FreeSequence(a);
  EXPECT_EQ(m.PoolStats().shared_blocks, 0);
  for (int32_t blk : m.PageTable(b, 1)) EXPECT_EQ(m.RefCount(blk), 1);
  m.FreeSequence(b);
  EXPECT_EQ(m.PoolStats().blocks_used, 0);
  EXPECT_EQ(m.num_free_blocks(), 32);
}

// Copy-on-write needs blocks too: an exhausted pool says so.
TEST(KvBlockManager, CopyOnWriteOfAFullPoolFails) {
  KvBlockManager m(Config(1, 1, 4, 2));
  const SeqId a = *m.AddSequence();
  ASSERT_TRUE(m.Reserve(a, 8).ok());
  m.CommitStep(a, 8, std::vector<int32_t>{8});
  const SeqId b = *m.Fork(a);
  std::vector<KvBlockManager::BlockCopy> copies;
  Status st = m.MakeWritable(b, 0, 0, &copies);
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_TRUE(copies.empty());
}

TEST(KvBlockManager, CompactionChecksAndTruncate) {
  KvBlockManager m(Config(2, 2, 4, 64));
  const SeqId a = *m.AddSequence();
  ASSERT_TRUE(m.Reserve(a, 10).ok());
  m.CommitStep(a, 10, std::vector<int32_t>(4, 10));
  const std::vector<int32_t> kept = {0, 3, 9};
  EXPECT_TRUE(m.CheckCompaction(a, 1, 1, false, kept).ok());
  EXPECT_EQ(m.CheckCompaction(a + 7, 1, 1, false, kept).message(), "unknown sequence id 7");
  EXPECT_EQ(m.CheckCompaction(a, 2, 0, false, kept).message(), "KV compaction: no layer 2 head 0");
  EXPECT_EQ(m.CheckCompaction(a, 1, 1, true, kept).code(), StatusCode::kFailedPrecondition);
  const std::vector<int32_t> bad = {0, 3, 3};
  EXPECT_EQ(m.CheckCompaction(a, 1, 1, false, bad).message(),
            "KV compaction of layer 1 head 1: kept slots must ascend within [0, 10), got 3 at "
            "index 2");
  m.Truncate(a, 3, 3);
  EXPECT_EQ(m.Length(a, 3), 3);
  EXPECT_EQ(m.PageTable(a, 3).size(), 1u);
  EXPECT_EQ(m.SequenceStats(a).blocks, 3 * 3 + 1);
}

// The per-step metrics' sums equal SequenceStats' (without its vectors).
TEST(KvBlockManager, LayerStatsAndBlockCountMatchSequenceStats) {
  KvBlockManager m(Config(3, 2, 4, 64));
  const SeqId a = *m.AddSequence();
  ASSERT_TRUE(m.Reserve(a, 9).ok());
  m.CommitStep(a, 9, std::vector<int32_t>{9, 8, 7, 6, 5, 4});
  const SequenceKvStats st = m.SequenceStats(a);
  std::vector<int64_t> retained(3, 100), logical(3, 0);
  m.AddLayerStats(a, retained, logical);
  for (int l = 0; l < 3; ++l) {
    EXPECT_EQ(retained[l], 100 + st.retained[l][0] + st.retained[l][1]) << l;
    EXPECT_EQ(logical[l], 9 * 2) << l;
  }
  EXPECT_EQ(m.NumBlocks(a), st.blocks);
  EXPECT_EQ(m.NumBlocks(a + 1), 0);
}

// The projection: dense heads hold T; DMS heads the window plus the rest at
// the live ratio; whole blocks per head.
TEST(KvCapacity, ProjectionOfDenseAndDmsStreams) {
  KvFootprint dense{kDenseWindow, 8.0, 16, 36 * 8};
  EXPECT_DOUBLE_EQ(ProjectedEntriesPerHead(8192, dense), 8192);
  EXPECT_EQ(ProjectedBlocks(8192, dense), 512 * 288);
  KvFootprint dms{512, 8.0, 16, 36 * 8};
  EXPECT_DOUBLE_EQ(ProjectedEntriesPerHead(100, dms), 100);
  EXPECT_DOUBLE_EQ(ProjectedEntriesPerHead(8192, dms), 513 + (8192 - 513) / 8.0);
  EXPECT_EQ(ProjectedBlocks(8192, dms), 93 * 288);  // 1472.9 entries: 93 blocks a head
  dms.live_ratio = 0.5;                              // below 1 counts as dense
  EXPECT_DOUBLE_EQ(ProjectedEntriesPerHead(8192, dms), 8192);
  EXPECT_EQ(ProjectedBlocks(0, dms), 0);
}

}  // namespace
}  // namespace dms
