// The rules around the KV policies: the keep count (kvpress's arithmetic),
// forced entries (protected tail, snapkv's window, sinks), ties by position,
// policy names, cache compaction and its refusals, the backend's refusals, and
// the protected tail of a chat prompt with the real Qwen3 tokenizer.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "engine/backends/backend_factory.h"
#include "engine/kv/dms_kv_cache.h"
#include "engine/policies/kv_policy.h"
#include "engine/runtime/chat_protect.h"
#include "engine/runtime/kv_policy_runner.h"
#include "engine/runtime/scheduler.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/test_util.h"

namespace dms {
namespace {

KvPolicySpec Spec(KvPolicyKind kind, double ratio, int T, int protect_from, KvPolicyParams params = {}) {
  KvPolicySpec s;
  s.kind = kind;
  s.compression_ratio = ratio;
  s.num_tokens = T;
  s.protect_from = protect_from;
  s.params = params;
  return s;
}

std::vector<int32_t> Kept(const KvPolicySpec& spec, const std::vector<double>& scores) {
  KvHeadScores h;
  h.positions.resize(scores.size());
  std::iota(h.positions.begin(), h.positions.end(), 0);
  h.scores = scores;
  return SelectKeptSlots(h, spec);
}

TEST(KvPolicyRules, KeepCountIsKvpressArithmetic) {
  EXPECT_EQ(KvKeepCount(200, 0.5), 100);
  EXPECT_EQ(KvKeepCount(7, 0.5), 3);      // floor
  EXPECT_EQ(KvKeepCount(10, 0.9), 1);     // 10 * (1 - 0.9) = 0.999...: int() gives 0, at least 1 stays
  EXPECT_EQ(KvKeepCount(100, 0.7), 30);   // 30.000000000000004
  EXPECT_EQ(KvKeepCount(40, 0.9), 3);     // 3.999...
  EXPECT_EQ(KvKeepCount(5, 0.0), 5);
  EXPECT_EQ(KvKeepCount(1, 0.99), 1);
}

TEST(KvPolicyRules, ForcedEntriesAndTiesByPosition) {
  KvPolicyParams p;
  p.window = 3;
  p.sinks = 2;
  // snapkv: the window [T - 3, T) and the tail are forced.
  const KvPolicySpec snap = Spec(KvPolicyKind::kSnapKv, 0.5, 10, 9, p);
  EXPECT_FALSE(KvForced(snap, 6));
  EXPECT_TRUE(KvForced(snap, 7));
  // streaming and expected-attention: the sinks.
  EXPECT_TRUE(KvForced(Spec(KvPolicyKind::kStreaming, 0.5, 10, 10, p), 1));
  EXPECT_FALSE(KvForced(Spec(KvPolicyKind::kExpectedAttention, 0.5, 10, 10, p), 2));
  EXPECT_TRUE(KvForced(Spec(KvPolicyKind::kKnorm, 0.5, 10, 8, p), 8));
  EXPECT_FALSE(KvForced(Spec(KvPolicyKind::kKnorm, 0.5, 10, 8, p), 7));

  // knorm-style scores with ties: equal scores go to the lower position.
  const std::vector<double> tied = {1, 3, 3, 3, 0, 3, 2, 2};
  EXPECT_EQ(Kept(Spec(KvPolicyKind::kKnorm, 0.5, 8, 8), tied), (std::vector<int32_t>{1, 2, 3, 5}));
  EXPECT_EQ(Kept(Spec(KvPolicyKind::kKnorm, 0.75, 8, 8), tied), (std::vector<int32_t>{1, 2}));
  // The protected tail takes part of the budget: K = 4, positions 6 and 7 forced.
  EXPECT_EQ(Kept(Spec(KvPolicyKind::kKnorm, 0.5, 8, 6), tied), (std::vector<int32_t>{1, 2, 6, 7}));
  // Forced entries beyond the budget all stay, nothing else does.
  EXPECT_EQ(Kept(Spec(KvPolicyKind::kKnorm, 0.9, 8, 5), tied), (std::vector<int32_t>{5, 6, 7}));
  // A NaN score ranks lowest.
  EXPECT_EQ(Kept(Spec(KvPolicyKind::kKnorm, 0.5, 4, 4), {NAN, 1, 2, 0}), (std::vector<int32_t>{1, 2}));
  // Streaming: sinks and the most recent entries (scores are the positions).
  EXPECT_EQ(Kept(Spec(KvPolicyKind::kStreaming, 0.5, 10, 10, p), {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}),
            (std::vector<int32_t>{0, 1, 7, 8, 9}));
}

// The linear-time selection against the definition: sort every unforced
// entry by (score desc, position asc), take what the budget leaves, add the
// forced ones. Random heads with many ties, NaNs, shuffled positions (a
// compacted head's slots are not in position order) and random tails.
TEST(KvPolicyRules, SelectionEqualsAFullSortOnRandomHeads) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 1 + static_cast<int>(rng() % (trial < 200 ? 60 : 5000));
    KvHeadScores h;
    h.positions.resize(n);
    std::iota(h.positions.begin(), h.positions.end(), 0);
    std::shuffle(h.positions.begin(), h.positions.end(), rng);
    for (int i = 0; i < n; ++i) h.scores.push_back(rng() % 23 == 0 ? NAN : static_cast<double>(rng() % 7));
    const double ratio = static_cast<double>(rng() % 100) / 100.0;
    const KvPolicySpec spec = Spec(KvPolicyKind::kKnorm, ratio, n, static_cast<int>(rng() % (n + 1)));
    std::vector<int32_t> want, rest;
    for (int32_t s = 0; s < n; ++s) (KvForced(spec, h.positions[s]) ? want : rest).push_back(s);
    auto key = [&](int32_t s) { return std::isnan(h.scores[s]) ? -INFINITY : h.scores[s]; };
    std::sort(rest.begin(), rest.end(), [&](int32_t a, int32_t b) {
      return key(a) != key(b) ? key(a) > key(b) : h.positions[a] < h.positions[b];
    });
    const int64_t room = std::max<int64_t>(0, KvKeepCount(n, ratio) - static_cast<int64_t>(want.size()));
    want.insert(want.end(), rest.begin(), rest.begin() + std::min<int64_t>(room, rest.size()));
    std::sort(want.begin(), want.end());
    ASSERT_EQ(SelectKeptSlots(h, spec), want) << "trial " << trial << " n " << n << " ratio " << ratio;
  }
}

TEST(KvPolicyRules, NamesAndRatios) {
  for (KvPolicyKind k : {KvPolicyKind::kAuto, KvPolicyKind::kDense, KvPolicyKind::kKnorm, KvPolicyKind::kSnapKv,
                         KvPolicyKind::kStreaming, KvPolicyKind::kExpectedAttention}) {
    auto parsed = ParseKvPolicy(KvPolicyName(k), "kv_policy");
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, k);
  }
  EXPECT_EQ(ParseKvPolicy("h2o\n", "--kv-policy").status().message(),
            "--kv-policy: expected one of auto, dense, knorm, snapkv, streaming, expected-attention; got "
            "'h2o\\u000a'");
  EXPECT_TRUE(ValidateCompressionRatio(0.0, "r").ok());
  EXPECT_TRUE(ValidateCompressionRatio(0.999, "r").ok());
  EXPECT_EQ(ValidateCompressionRatio(NAN, "compression_ratio").message(), "compression_ratio must be in [0, 1), got nan");
  EXPECT_EQ(KvCaptureFor(KvPolicyKind::kSnapKv, {}).last_queries, 64);
  EXPECT_EQ(KvCaptureFor(KvPolicyKind::kExpectedAttention, {}).stats_from, 4);
  EXPECT_FALSE(KvCaptureFor(KvPolicyKind::kKnorm, {}).any());
  GenerationRequest r;
  r.protect_tokens = 500;
  EXPECT_EQ(MakeKvPolicySpec(r, 100).protect_from, 0);
  r.protect_tokens = 30;
  EXPECT_EQ(MakeKvPolicySpec(r, 100).protect_from, 70);
}

TEST(KvPolicyRules, CompactionKeepsContentsInOrderAndFreesBlocks) {
  KvCacheConfig cfg;
  cfg.num_layers = 1;
  cfg.num_kv_heads = 2;
  cfg.head_dim = 4;
  cfg.window = kDenseWindow;
  cfg.block_size = 4;
  cfg.num_blocks = 16;
  DmsKvCache cache(cfg);
  SeqId seq = cache.AddSequence();
  ASSERT_TRUE(cache.Reserve(seq, 10).ok());
  for (int t = 0; t < 10; ++t) {
    for (int h = 0; h < 2; ++h) {
      const float k[4] = {float(t), float(h), 1, 2}, v[4] = {float(-t), float(h), 3, 4};
      ASSERT_TRUE(cache.Append(seq, 0, h, k, v, false).ok());
    }
  }
  cache.CommitStep(seq, 10);
  EXPECT_EQ(cache.PoolStats().blocks_used, 6);
  const std::vector<int32_t> kept = {0, 3, 4, 9};
  ASSERT_TRUE(cache.Compact(seq, 0, 1, kept).ok());
  HeadCacheView v = cache.View(seq, 0, 1);
  ASSERT_EQ(v.length(), 4);
  for (int s = 0; s < 4; ++s) {
    EXPECT_EQ(v.pos(s), kept[s]);
    EXPECT_EQ(v.k(s)[0], float(kept[s]));
    EXPECT_EQ(v.v(s)[0], float(-kept[s]));
    EXPECT_EQ(v.k(s)[1], 1.0f);
  }
  EXPECT_EQ(cache.View(seq, 0, 0).length(), 10) << "the other head is untouched";
  EXPECT_EQ(cache.PoolStats().blocks_used, 3 + 1);
  EXPECT_EQ(cache.SequenceStats(seq).logical_tokens, 10);
  // Appends go after the kept entries.
  ASSERT_TRUE(cache.Reserve(seq, 1).ok());
  const float k[4] = {10, 1, 0, 0};
  ASSERT_TRUE(cache.Append(seq, 0, 1, k, k, false).ok());
  EXPECT_EQ(cache.View(seq, 0, 1).pos(4), 10);

  const std::vector<int32_t> bad = {2, 1};
  EXPECT_EQ(cache.Compact(seq, 0, 1, bad).message(),
            "KV compaction of layer 0 head 1: kept slots must ascend within [0, 5), got 1 at index 1");
  const std::vector<int32_t> out_of_range = {5};
  EXPECT_EQ(cache.Compact(seq, 0, 1, out_of_range).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(cache.View(seq, 0, 1).length(), 5) << "a refused list changes nothing";
  cache.FreeSequence(seq);
  EXPECT_EQ(cache.PoolStats().blocks_used, 0);

  KvCacheConfig dms = cfg;
  dms.window = 2;
  DmsKvCache evicting(dms);
  SeqId s2 = evicting.AddSequence();
  EXPECT_EQ(evicting.Compact(s2, 0, 0, {}).message(),
            "KV compaction needs a dense cache; this one evicts by DMS decisions");
}

std::unique_ptr<Backend> MakeBackend(const std::string& name, bool force_dense) {
  auto ckpt = Checkpoint::Load(testing::TestDataDir() + "/models/" + name);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  BackendOptions bo;
  bo.kv_block_size = 8;
  bo.kv_num_blocks = 1000;
  bo.force_dense = force_dense;
  return std::move(*CreateBackend(std::shared_ptr<const Checkpoint>(std::move(*ckpt)), bo));
}

TEST(KvPolicyRules, BackendRefusals) {
  auto dms = MakeBackend("dms-neuron-w16-long", false);
  EXPECT_TRUE(dms->info().dms_eviction);
  SeqId seq = *dms->CreateSequence();
  EXPECT_EQ(dms->SetKvCapture(seq, KvCaptureFor(KvPolicyKind::kSnapKv, {})).message(),
            "KV policies need a dense cache; this backend evicts by the checkpoint's DMS decisions");
  EXPECT_TRUE(dms->SetKvCapture(seq, {}).ok()) << "stopping a capture that never started is fine";

  auto plain = MakeBackend("qwen3-plain", false);
  EXPECT_FALSE(plain->info().dms_eviction);
  EXPECT_TRUE(plain->info().kv_policies);
  seq = *plain->CreateSequence();
  std::vector<int32_t> tokens(20);
  std::iota(tokens.begin(), tokens.end(), 1);
  ForwardChunk c{seq, tokens, 0};
  std::vector<float> logits;
  ASSERT_TRUE(plain->Forward(std::span<const ForwardChunk>(&c, 1), &logits).ok());
  std::vector<KvHeadScores> heads;
  const KvPolicySpec ea = Spec(KvPolicyKind::kExpectedAttention, 0.5, 20, 20);
  EXPECT_EQ(plain->ScoreKvLayer(seq, 0, ea, &heads).message(),
            "KV policy 'expected-attention': the prompt's queries were not captured (SetKvCapture before prefill)");
  EXPECT_EQ(plain->ScoreKvLayer(seq, 5, ea, &heads).message(), "KV policy: no layer 5");
  EXPECT_EQ(plain->ScoreKvLayer(seq, 0, Spec(KvPolicyKind::kDense, 0, 20, 20), &heads).message(),
            "KV policy 'dense' has no scores");
  std::vector<std::vector<int32_t>> kept = {{0, 1}, {3, 2}};
  EXPECT_EQ(plain->CompactKv(seq, 0, kept).message(),
            "KV compaction of layer 0 head 1: kept slots must ascend within [0, 20), got 2 at index 1");
  EXPECT_EQ(plain->SequenceStats(seq).retained[0][0], 20) << "nothing changed";
  kept = {{0}};
  EXPECT_EQ(plain->CompactKv(seq, 0, kept).message(), "KV compaction: 1 kept-slot lists for 2 KV heads");
  // The runner checks the sequence holds the prompt it plans for.
  EXPECT_EQ(ApplyKvPolicy(*plain, seq, Spec(KvPolicyKind::kKnorm, 0.5, 21, 21)).message(),
            "KV policy: the sequence holds 20 tokens, the policy was planned for 21");
  ASSERT_TRUE(ApplyKvPolicy(*plain, seq, Spec(KvPolicyKind::kKnorm, 0.5, 20, 20)).ok());
  EXPECT_EQ(plain->SequenceStats(seq).retained[1][1], 10);
}

// A sequence whose policy is still to run gets chunks that stop at its
// prompt's end, also when it is recomputed with generated tokens after a
// preemption; the engine then prunes before anything else is appended.
TEST(KvPolicyRules, SchedulerCutsChunksAtThePromptWhileAPolicyIsPending) {
  auto backend = MakeBackend("qwen3-plain", false);
  SchedulerOptions opts;
  opts.max_batch_tokens = 2048;
  Scheduler sched(backend.get(), opts);
  auto seq = std::make_unique<Sequence>();
  seq->request.kv_policy = KvPolicyKind::kKnorm;
  seq->tokens.resize(23);
  std::iota(seq->tokens.begin(), seq->tokens.end(), 1);
  seq->num_prompt = 20;
  seq->num_generated = 3;  // a recompute: prompt + 3 generated tokens
  seq->kv_policy_pending = true;
  Sequence* s = seq.get();
  sched.Add(std::move(seq));
  std::vector<PlannedChunk> plan = sched.Schedule();
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].num_tokens, 20);
  EXPECT_FALSE(plan[0].wants_logits);
  s->num_cached = 20;
  s->kv_policy_pending = false;  // the engine ran the policy
  plan = sched.Schedule();
  ASSERT_EQ(plan.size(), 1u);
  EXPECT_EQ(plan[0].num_tokens, 3);
  EXPECT_TRUE(plan[0].wants_logits);
  // Without a pending policy nothing is cut.
  s->num_cached = 0;
  plan = sched.Schedule();
  EXPECT_EQ(plan[0].num_tokens, 23);
  sched.Remove(s);
}

// A backend that implements none of the KV-policy methods.
class MinimalBackend : public Backend {
 public:
  const ModelConfig& config() const override { return config_; }
  BackendInfo info() const override {
    BackendInfo i;
    i.name = "minimal";
    return i;
  }
  StatusOr<SeqId> CreateSequence() override { return 0; }
  void ReleaseSequence(SeqId) override {}
  int KvBlocksNeeded(SeqId, int) const override { return 0; }
  Status Forward(std::span<const ForwardChunk>, ForwardResult*) override { return OkStatus(); }
  SequenceKvStats SequenceStats(SeqId) const override { return {}; }
  KvPoolStats PoolStats() const override { return {}; }

 private:
  ModelConfig config_;
};

TEST(KvPolicyRules, BackendsWithoutPoliciesSayUnimplemented) {
  MinimalBackend b;
  EXPECT_FALSE(b.info().kv_policies);
  EXPECT_EQ(b.SetKvCapture(0, {}).code(), StatusCode::kUnimplemented);
  std::vector<KvHeadScores> heads;
  EXPECT_EQ(b.ScoreKvLayer(0, 0, {}, &heads).message(), "minimal backend: KV policies are not implemented");
  EXPECT_EQ(b.CompactKv(0, 0, {}).code(), StatusCode::kUnimplemented);
}

// The chat rule: the last user message and the generation prompt.
TEST(KvPolicyRules, ChatProtectedTailIsTheLastUserMessageAndTheGenerationPrompt) {
  auto tok = Tokenizer::Load(testing::TokenizerDir());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  auto tail_of = [&](const std::vector<ChatMessage>& messages, bool thinking, std::string* tail_text) {
    ChatOptions opts;
    opts.enable_thinking = thinking;
    auto text = RenderChatTemplate(messages, opts);
    EXPECT_TRUE(text.ok());
    const std::vector<int32_t> ids = (*tok)->Encode(*text, true);
    auto tail = ChatProtectedTail(messages, opts, **tok, ids);
    EXPECT_TRUE(tail.ok()) << tail.status().ToString();
    *tail_text = (*tok)->Decode(std::vector<int32_t>(ids.end() - *tail, ids.end()), false);
    return *tail;
  };
  std::string tail;
  const std::vector<ChatMessage> conv = {
      {"system", "You are terse.", std::nullopt},
      {"user", "Read this long document: lorem ipsum dolor sit amet.", std::nullopt},
      {"assistant", "<think>\nhm\n</think>\n\nDone.", std::nullopt},
      {"user", "What was the second word?", std::nullopt},
  };
  EXPECT_GT(tail_of(conv, false, &tail), 0);
  EXPECT_EQ(tail,
            "<|im_start|>user\nWhat was the second word?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  // Assistant turns after the last user message belong to the tail (their
  // reasoning is rendered as in the whole conversation).
  std::vector<ChatMessage> cont = conv;
  cont.push_back({"assistant", "Ipsum", std::string("looking")});
  tail_of(cont, true, &tail);
  EXPECT_EQ(tail,
            "<|im_start|>user\nWhat was the second word?<|im_end|>\n<|im_start|>assistant\n<think>\nlooking\n"
            "</think>\n\nIpsum<|im_end|>\n<|im_start|>assistant\n");
  // No user message: only the generation prompt.
  const std::vector<ChatMessage> system_only = {{"system", "Say hi.", std::nullopt}};
  EXPECT_EQ(tail_of(system_only, true, &tail), 3);
  EXPECT_EQ(tail, "<|im_start|>assistant\n");
  // One user message: everything is the tail.
  const std::vector<ChatMessage> single = {{"user", "hello", std::nullopt}};
  ChatOptions opts;
  auto text = RenderChatTemplate(single, opts);
  const std::vector<int32_t> ids = (*tok)->Encode(*text, true);
  EXPECT_EQ(*ChatProtectedTail(single, opts, **tok, ids), static_cast<int>(ids.size()));
  // Ids that are not this conversation's: the tail grows to the first difference.
  std::vector<int32_t> other = (*tok)->Encode(*RenderChatTemplate(conv, opts), true);
  other[2] = other[2] + 1;
  EXPECT_EQ(*ChatProtectedTail(conv, opts, **tok, other), static_cast<int>(other.size()) - 2);
}

}  // namespace
}  // namespace dms
