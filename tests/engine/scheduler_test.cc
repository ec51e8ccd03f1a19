// The scheduler on its own, over a fake backend that computes nothing: a
// KvBlockManager whose heads retain what a DMS cache that evicts every token
// leaving the window would (min(T, W + 1)), or everything (dense). Admission,
// decode-first planning with prefill chunks in the same step, preemption,
// trimming and sharing are checked against the block counts.
#include "engine/runtime/scheduler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <vector>

#include "engine/kv/kv_block_manager.h"

namespace dms {
namespace {

class FakeBackend : public Backend {
 public:
  // window: W, or kDenseWindow.
  FakeBackend(int window, int num_blocks, int block_size = 4)
      : window_(window), blocks_(ManagerConfig(num_blocks, block_size)) {
    config_.num_layers = 2;
    config_.num_kv_heads = 2;
    config_.num_q_heads = 2;
    config_.head_dim = 4;
    config_.vocab_size = 16;
    config_.dms.enabled = window != kDenseWindow;
    config_.dms.window_size = window == kDenseWindow ? 0 : window;
  }

  const ModelConfig& config() const override { return config_; }
  BackendInfo info() const override {
    BackendInfo i;
    i.name = "fake";
    i.kv_block_size = blocks_.config().block_size;
    i.kv_num_blocks = blocks_.config().num_blocks;
    i.dms_eviction = window_ != kDenseWindow;
    return i;
  }
  StatusOr<SeqId> CreateSequence() override { return blocks_.AddSequence(); }
  void ReleaseSequence(SeqId seq) override { blocks_.FreeSequence(seq); }
  int KvBlocksNeeded(SeqId seq, int n) const override { return blocks_.BlocksNeeded(seq, n); }
  Status Forward(std::span<const ForwardChunk> batch, ForwardResult* out) override {
    for (const ForwardChunk& c : batch) DMS_RETURN_IF_ERROR(blocks_.Reserve(c.seq, c.tokens.size()));
    out->summaries.clear();
    for (const ForwardChunk& c : batch) {
      const int t = blocks_.LogicalTokens(c.seq) + static_cast<int>(c.tokens.size());
      const int kept = window_ == kDenseWindow ? t : std::min(t, window_ + 1);
      blocks_.CommitStep(c.seq, c.tokens.size(), std::vector<int32_t>(blocks_.num_heads(), kept));
      for (int i = 0; i < c.num_logits; ++i) out->summaries.push_back({1, 0, 0});
    }
    ++steps_;
    return OkStatus();
  }
  SequenceKvStats SequenceStats(SeqId seq) const override { return blocks_.SequenceStats(seq); }
  KvPoolStats PoolStats() const override { return blocks_.PoolStats(); }

  KvBlockManager& blocks() { return blocks_; }
  int steps() const { return steps_; }

 private:
  static KvBlockManagerConfig ManagerConfig(int num_blocks, int block_size) {
    KvBlockManagerConfig c;
    c.num_layers = 2;
    c.num_kv_heads = 2;
    c.block_size = block_size;
    c.num_blocks = num_blocks;
    return c;
  }

  int window_;
  ModelConfig config_;
  KvBlockManager blocks_;
  int steps_ = 0;
};

std::unique_ptr<Sequence> MakeSequence(uint64_t arrival, int prompt, int max_tokens,
                                       int priority = 0) {
  auto s = std::make_unique<Sequence>();
  s->arrival = arrival;
  s->request.priority = priority;
  s->request.max_tokens = max_tokens;
  s->tokens.assign(prompt, 1);
  s->num_prompt = prompt;
  return s;
}

// Sequences Step removed, kept alive so a returned plan stays readable.
std::vector<std::unique_ptr<Sequence>>& Finished() {
  static std::vector<std::unique_ptr<Sequence>> finished;
  return finished;
}

// One engine step as the engine takes it: forward the plan, advance each
// chunk, add a token where a chunk ends the pending tokens, remove the
// sequences that reached max_tokens. Returns the plan.
std::vector<PlannedChunk> Step(Scheduler& sched, FakeBackend& backend) {
  std::vector<PlannedChunk> plan = sched.Schedule();
  std::vector<ForwardChunk> batch;
  std::vector<std::vector<int32_t>> tokens;
  tokens.reserve(plan.size());
  for (const PlannedChunk& p : plan) {
    tokens.emplace_back(p.seq->tokens.begin() + p.seq->num_cached,
                        p.seq->tokens.begin() + p.seq->num_cached + p.num_tokens);
    ForwardChunk c;
    c.seq = p.seq->kv;
    c.tokens = tokens.back();
    c.num_logits = p.wants_logits ? 1 : 0;
    batch.push_back(c);
  }
  ForwardResult out;
  EXPECT_TRUE(backend.Forward(batch, &out).ok());
  for (const PlannedChunk& p : plan) {
    p.seq->num_cached += p.num_tokens;
    if (!p.wants_logits) continue;
    p.seq->tokens.push_back(2);
    ++p.seq->num_generated;
    if (p.seq->num_generated >= static_cast<int>(p.seq->request.max_tokens)) {
      Finished().push_back(sched.Remove(p.seq));
    }
  }
  return plan;
}

// Dense heads of 4-slot blocks: a 30-token prompt projects to 8 blocks a
// head, 32 a sequence. A 100-block pool (1 kept free) admits three such
// prompts in one step, not four.
TEST(Scheduler, AdmitsWhatTheProjectedFootprintAllows) {
  FakeBackend backend(kDenseWindow, 100);
  Scheduler sched(&backend, SchedulerOptions{1024, 64, 0.01});
  for (int i = 0; i < 4; ++i) sched.Add(MakeSequence(i, 30, 2));
  std::vector<PlannedChunk> plan = Step(sched, backend);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(sched.running().size(), 3u);
  EXPECT_EQ(sched.waiting().size(), 1u);
  EXPECT_EQ(backend.PoolStats().blocks_used, 3 * 32);
  EXPECT_EQ(sched.ProjectedPromptBlocks(30), 32);
}

// DMS: the projection uses the live ratio, so the same pool admits more once
// the running sequences have shown their compression.
TEST(Scheduler, LiveCompressionAdmitsMoreStreams) {
  FakeBackend backend(/*window=*/3, 100);
  Scheduler sched(&backend, SchedulerOptions{1024, 64, 0.0});
  EXPECT_EQ(sched.ProjectedPromptBlocks(100), 100 / 4 * 4);  // ratio 1: dense
  sched.set_live_compression(10.0);
  // min(100, 4) + 96 / 10 = 13.6 entries: 4 blocks a head.
  EXPECT_EQ(sched.ProjectedPromptBlocks(100), 4 * 4);
  sched.set_live_compression(0.5);  // clamped to 1
  EXPECT_EQ(sched.ProjectedPromptBlocks(100), 100);
}

// Running decodes are planned first, every step; a long prompt arriving
// later prefills in the budget they leave (chunked prefill in the same
// step), never stalling them.
TEST(Scheduler, DecodesFirstAndPrefillChunksShareTheStep) {
  FakeBackend backend(/*window=*/8, 4096);
  Scheduler sched(&backend, SchedulerOptions{64, 64, 0.0});
  for (int i = 0; i < 4; ++i) sched.Add(MakeSequence(i, 10, 100));
  Step(sched, backend);  // four prefills
  Step(sched, backend);  // four decodes
  sched.Add(MakeSequence(10, 300, 1));
  for (int step = 0; step < 5; ++step) {
    std::vector<PlannedChunk> plan = Step(sched, backend);
    int decodes = 0, prefill = 0;
    for (const PlannedChunk& p : plan) {
      if (p.seq->num_prompt == 10) {
        ++decodes;
        EXPECT_EQ(p.num_tokens, 1);
      } else {
        prefill += p.num_tokens;
      }
    }
    EXPECT_EQ(decodes, 4) << "step " << step;
    EXPECT_EQ(prefill, 60) << "step " << step;
  }
}

// Blocks the eviction frees go back after every step: with W = 3 a head
// never holds more than one 4-slot block, however long the sequence.
TEST(Scheduler, TrimKeepsDmsSequencesAtTheirWindow) {
  FakeBackend backend(/*window=*/3, 64);
  Scheduler sched(&backend, SchedulerOptions{256, 8, 0.0});
  sched.Add(MakeSequence(0, 40, 200));
  for (int step = 0; step < 150; ++step) {
    Step(sched, backend);
    ASSERT_LE(backend.PoolStats().blocks_used, 4) << "step " << step;
  }
  EXPECT_EQ(sched.num_preemptions(), 0);
}

// When the pool cannot hold every decode, the least urgent running sequence
// is preempted (its blocks released, back to waiting, recomputed later) and
// the more urgent ones go on.
TEST(Scheduler, PreemptsTheLeastUrgentWhenDecodesDoNotFit) {
  FakeBackend backend(kDenseWindow, 24);
  Scheduler sched(&backend, SchedulerOptions{256, 8, 0.0});
  sched.Add(MakeSequence(0, 8, 40, /*priority=*/0));
  sched.Add(MakeSequence(1, 8, 40, /*priority=*/1));
  ASSERT_EQ(Step(sched, backend).size(), 2u);  // 2 x 8 blocks of 24
  bool preempted = false;
  for (int step = 0; step < 30 && !preempted; ++step) {
    Step(sched, backend);
    preempted = sched.num_preemptions() > 0;
  }
  ASSERT_TRUE(preempted);
  ASSERT_EQ(sched.waiting().size(), 1u);
  const Sequence& victim = *sched.waiting().front();
  EXPECT_EQ(victim.request.priority, 1);
  EXPECT_EQ(victim.kv, -1);
  EXPECT_EQ(victim.num_cached, 0);
  EXPECT_EQ(victim.preemptions, 1);
  ASSERT_EQ(sched.running().size(), 1u);
  EXPECT_EQ(sched.running().front()->request.priority, 0);
  // Only the survivor's blocks are held.
  EXPECT_EQ(backend.PoolStats().blocks_used,
            backend.SequenceStats(sched.running().front()->kv).blocks);
}

// A sequence that resumes from a fork of another's cache (a shared prompt)
// needs only the blocks for its own new tokens: the pool counts the shared
// blocks once, and the scheduler admits it where a fresh copy would not fit.
TEST(Scheduler, ForkedCachesAreCountedOnce) {
  FakeBackend backend(kDenseWindow, 40);
  KvBlockManager& blocks = backend.blocks();
  const SeqId base = *blocks.AddSequence();
  ASSERT_TRUE(blocks.Reserve(base, 32).ok());
  blocks.CommitStep(base, 32, std::vector<int32_t>(4, 32));  // 8 blocks a head: 32
  Scheduler sched(&backend, SchedulerOptions{256, 8, 0.0});
  auto s = MakeSequence(0, 33, 2);
  s->kv = *blocks.Fork(base);
  s->num_cached = 32;  // one new prompt token
  s->num_reused = 32;
  sched.Add(std::move(s));
  std::vector<PlannedChunk> plan = Step(sched, backend);
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].num_tokens, 1);
  // A fresh copy would need 36 of the 8 free blocks; the fork takes one new
  // block a head (slot 32 starts a block) and shares the other 32.
  EXPECT_EQ(backend.PoolStats().blocks_used, 36);
  EXPECT_EQ(backend.PoolStats().shared_blocks, 32);
  Step(sched, backend);  // its last token: it finishes and lets go
  EXPECT_TRUE(sched.idle());
  EXPECT_EQ(backend.PoolStats().blocks_used, 32);
  EXPECT_EQ(backend.PoolStats().shared_blocks, 0);
}

}  // namespace
}  // namespace dms
