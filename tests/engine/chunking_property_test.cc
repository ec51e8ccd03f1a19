// Property tests of the CPU engine on random token sequences:
//   * chunking invariance: any split into prefill chunks and decodes, and any
//     batching with other sequences, gives the logits of one prefill;
//   * eviction off equals plain attention: a DMS model with eviction disabled
//     matches the same weights run with a dense cache;
//   * the cache never holds more than the retained count, and block
//     accounting returns to zero when sequences end.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/backends/backend_factory.h"
#include "engine/core/dms_rules.h"
#include "tests/forward_result_check.h"
#include "tests/test_util.h"

namespace dms {
namespace {
namespace fs = std::filesystem;

std::string ModelDir(const std::string& name) { return testing::TestDataDir() + "/models/" + name; }

std::unique_ptr<Backend> Make(const std::string& dir, bool dense = false, int block_size = 8) {
  auto ckpt = Checkpoint::Load(dir);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  BackendOptions bo;
  bo.kv_block_size = block_size;
  bo.kv_num_blocks = 20000;
  bo.force_dense = dense;
  auto b = CreateBackend(std::shared_ptr<const Checkpoint>(std::move(*ckpt)), bo);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return std::move(*b);
}

std::vector<int32_t> RandomTokens(std::mt19937& rng, int n, int vocab) {
  std::vector<int32_t> t(n);
  for (auto& x : t) x = std::uniform_int_distribution<int>(0, vocab - 1)(rng);
  return t;
}

std::vector<int> RandomSplit(std::mt19937& rng, int n) {
  std::vector<int> chunks;
  while (n > 0) {
    // Mostly decodes and short chunks, sometimes a long prefill.
    int c = std::bernoulli_distribution(0.4)(rng) ? 1 : std::uniform_int_distribution<int>(2, 60)(rng);
    c = std::min(c, n);
    chunks.push_back(c);
    n -= c;
  }
  return chunks;
}

float MaxDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const float d = std::abs(a[i] - b[i]);
    m = std::isnan(d) ? INFINITY : std::max(m, d);
  }
  return m;
}

// Runs several sequences together: in each step every unfinished sequence
// contributes its next chunk. Returns all logits per sequence.
std::vector<std::vector<float>> RunBatched(Backend& b, const std::vector<std::vector<int32_t>>& seqs,
                                           const std::vector<std::vector<int>>& splits) {
  const int vocab = b.config().vocab_size;
  std::vector<SeqId> ids;
  for (size_t i = 0; i < seqs.size(); ++i) ids.push_back(*b.CreateSequence());
  std::vector<std::vector<float>> out(seqs.size());
  std::vector<size_t> next_chunk(seqs.size(), 0), pos(seqs.size(), 0);
  for (;;) {
    std::vector<ForwardChunk> step;
    std::vector<size_t> who;
    for (size_t i = 0; i < seqs.size(); ++i) {
      if (next_chunk[i] >= splits[i].size()) continue;
      const int n = splits[i][next_chunk[i]++];
      step.push_back({ids[i], std::span<const int32_t>(seqs[i].data() + pos[i], n), n});
      who.push_back(i);
      pos[i] += n;
    }
    if (step.empty()) break;
    std::vector<float> logits;
    Status st = b.Forward(step, &logits);
    EXPECT_TRUE(st.ok()) << st.ToString();
    size_t row = 0;
    for (size_t k = 0; k < step.size(); ++k) {
      const size_t n = step[k].tokens.size();
      out[who[k]].insert(out[who[k]].end(), logits.begin() + row * vocab,
                         logits.begin() + (row + n) * vocab);
      row += n;
    }
    // The cache never holds more than W+1 + kept-old entries: checked via
    // blocks: every head's blocks cover exactly ceil(retained / block).
    for (size_t k = 0; k < step.size(); ++k) {
      SequenceKvStats st2 = b.SequenceStats(step[k].seq);
      int max_retained = 0;
      for (const auto& l : st2.retained)
        for (int r : l) max_retained = std::max(max_retained, r);
      EXPECT_LE(max_retained, st2.logical_tokens);
    }
  }
  for (SeqId id : ids) b.ReleaseSequence(id);
  return out;
}

class ChunkingInvariance : public ::testing::TestWithParam<std::string> {};

TEST_P(ChunkingInvariance, RandomSplitsAndBatchesGiveOnePrefillsLogits) {
  auto b = Make(ModelDir(GetParam()));
  const int vocab = b->config().vocab_size;
  std::mt19937 rng(std::hash<std::string>()(GetParam()) & 0xffff);
  for (int trial = 0; trial < 3; ++trial) {
    std::vector<std::vector<int32_t>> seqs;
    std::vector<std::vector<int>> one, random;
    for (int s = 0; s < 3; ++s) {
      const int n = std::uniform_int_distribution<int>(30, 160)(rng);
      seqs.push_back(RandomTokens(rng, n, vocab));
      one.push_back({n});
      random.push_back(RandomSplit(rng, n));
    }
    auto ref = RunBatched(*b, {seqs[0]}, {one[0]});
    auto solo = RunBatched(*b, seqs, one);
    auto mixed = RunBatched(*b, seqs, random);
    EXPECT_LE(MaxDiff(ref[0], solo[0]), 1e-4f) << "batching changed logits";
    for (int s = 0; s < 3; ++s) {
      EXPECT_LE(MaxDiff(solo[s], mixed[s]), 1e-4f) << "trial " << trial << " seq " << s;
    }
    EXPECT_EQ(b->PoolStats().blocks_used, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ChunkingInvariance,
                         ::testing::Values("dms-neuron-w0-gqa1", "dms-neuron-w4-gqa4-rope-params",
                                           "dms-proj-w16-gqa4", "dms-proj-layer-alpha-long",
                                           "qwen3-plain"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

TEST(EvictionOff, DisabledEvictionEqualsADenseCache) {
  // dms-neuron-no-evict has dms_disable_eviction; the same weights with the
  // dense cache (no decisions at all) must give the same logits, and the
  // DMS cache must then hold every token.
  const std::string dir = ModelDir("dms-neuron-no-evict");
  auto dms = Make(dir, /*dense=*/false);
  auto dense = Make(dir, /*dense=*/true);
  std::mt19937 rng(5);
  auto tokens = RandomTokens(rng, 150, dms->config().vocab_size);
  auto a = RunBatched(*dms, {tokens}, {{100, 1, 1, 48}});
  auto c = RunBatched(*dense, {tokens}, {{150}});
  EXPECT_LE(MaxDiff(a[0], c[0]), 1e-4f);
  SeqId s = *dms->CreateSequence();
  ForwardChunk chunk{s, tokens, 0};
  std::vector<float> logits;
  ASSERT_TRUE(dms->Forward(std::span<const ForwardChunk>(&chunk, 1), &logits).ok());
  for (const auto& layer : dms->SequenceStats(s).retained)
    for (int r : layer) EXPECT_EQ(r, 150);
}

TEST(EvictionOff, EvictingModelDiffersFromDense) {
  // The converse, so the test above can fail: with eviction on, logits move.
  const std::string dir = ModelDir("dms-neuron-w0-gqa1");
  auto dms = Make(dir, false);
  auto dense = Make(dir, true);
  std::mt19937 rng(6);
  auto tokens = RandomTokens(rng, 120, dms->config().vocab_size);
  auto a = RunBatched(*dms, {tokens}, {{120}});
  auto c = RunBatched(*dense, {tokens}, {{120}});
  EXPECT_GT(MaxDiff(a[0], c[0]), 1e-2f);
}

TEST(ForwardErrors, BadBatchesAreRefusedWithoutSideEffects) {
  auto b = Make(ModelDir("dms-neuron-w0-gqa1"));
  SeqId s = *b->CreateSequence();
  std::vector<int32_t> ok = {1, 2, 3}, bad = {1, 5000000};
  std::vector<float> logits;
  auto run = [&](std::vector<ForwardChunk> chunks) { return b->Forward(chunks, &logits); };
  Status st = run({{s, bad, 1}});
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), "token id 5000000 outside the vocabulary [0, " +
                              std::to_string(b->config().vocab_size) + ")");
  EXPECT_EQ(run({{s, ok, 4}}).message(), "num_logits 4 outside [0, 3]");
  EXPECT_EQ(run({{s, ok, 1}, {s, ok, 1}}).message(), "sequence 0 appears twice in a step");
  EXPECT_EQ(run({{77, ok, 1}}).message(), "unknown sequence id 77");
  EXPECT_EQ(run({{s, {}, 0}}).message(), "empty chunk for sequence 0");
  EXPECT_EQ(b->SequenceStats(s).logical_tokens, 0);
  EXPECT_TRUE(run({{s, ok, 1}}).ok());
  EXPECT_EQ(b->SequenceStats(s).logical_tokens, 3);
}

TEST(ForwardResult, SummarisedChunksReturnTheirSummariesAndNoRows) {
  auto full = Make(ModelDir("dms-neuron-w0-gqa1"));
  auto mixed = Make(ModelDir("dms-neuron-w0-gqa1"));
  const int vocab = full->config().vocab_size;
  std::mt19937 rng(11);
  std::vector<std::vector<int32_t>> prompts = {RandomTokens(rng, 9, vocab), RandomTokens(rng, 4, vocab),
                                               RandomTokens(rng, 13, vocab)};
  const int num_logits[] = {2, 1, 3};
  const bool keep_rows[] = {true, false, true};
  std::vector<SeqId> a, b;
  for (int i = 0; i < 3; ++i) {
    a.push_back(*full->CreateSequence());
    b.push_back(*mixed->CreateSequence());
  }
  for (int step = 0; step < 2; ++step) {  // a prefill step, then a decode step
    std::vector<ForwardChunk> ca, cb;
    for (int i = 0; i < 3; ++i) {
      std::span<const int32_t> t = step == 0 ? std::span<const int32_t>(prompts[i])
                                             : std::span<const int32_t>(prompts[i]).first(1);
      const int nl = step == 0 ? num_logits[i] : 1;
      ca.push_back({a[i], t, nl});
      cb.push_back({b[i], t, nl, keep_rows[i]});
    }
    ForwardResult ra, rb;
    ASSERT_TRUE(full->Forward(ca, &ra).ok());
    ASSERT_TRUE(mixed->Forward(cb, &rb).ok());
    ASSERT_EQ(ra.summaries.size(), ra.logits.size() / vocab);
    // Bit for bit on the CPU: the same arithmetic on the same rows.
    EXPECT_TRUE(testing::ExpectSummariesMatchFullRows(cb, vocab, ra, rb, 0)) << "step " << step;
    EXPECT_TRUE(testing::ExpectSummariesMatchFullRows(ca, vocab, ra, ra, 0)) << "step " << step;
  }
  // The all-rows form refuses a batch that asks for summaries only.
  std::vector<float> logits;
  std::vector<int32_t> one = {1};
  ForwardChunk summary_only{b[0], one, 1, false};
  EXPECT_EQ(mixed->Forward({&summary_only, 1}, &logits).ToString(),
            "INVALID_ARGUMENT: Forward into a logits vector needs full_logits on every chunk");
}

}  // namespace
}  // namespace dms
