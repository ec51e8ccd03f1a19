// The KV policies on the CPU backend against the float64 reference on tiny
// checkpoints (tests/data/kv_policies/checkpoint_cases.json): a 160-token
// prompt prefilled in several chunkings, per-(layer, KV head) scores, kept
// positions after ApplyKvPolicy (equal sets), the logits of decode steps on
// the pruned cache, and `--kv-policy dense` (a DMS checkpoint with its
// decisions ignored) against the reference's dense logits.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>
#include <random>

#include "engine/backends/backend_factory.h"
#include "engine/model/checkpoint.h"
#include "engine/runtime/kv_policy_runner.h"
#include "tests/engine/kv_policy_golden.h"

namespace dms {
namespace {

using testing::FeedChunks;
using testing::HeldPositions;
using testing::KvPolicyDataDir;
using testing::PolicyChunkings;

constexpr float kLogitTolerance = 2e-3f;       // as the golden-logit tests (fp32 vs float64)
constexpr double kScoreTolerance = 2e-6;       // relative; the reference's boundary margins are >= 2e-5

std::string ModelDir(const std::string& name) { return testing::TestDataDir() + "/models/" + name; }

std::unique_ptr<Backend> MakeBackend(const std::string& name, bool force_dense, int block_size = 8) {
  auto ckpt = Checkpoint::Load(ModelDir(name));
  EXPECT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  BackendOptions bo;
  bo.kv_block_size = block_size;
  bo.kv_num_blocks = 4000;
  bo.force_dense = force_dense;
  auto b = CreateBackend(std::shared_ptr<const Checkpoint>(std::move(*ckpt)), bo);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return std::move(*b);
}

float MaxAbsDiff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float m = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    const float d = std::abs(a[i] - b[i]);
    m = std::isnan(d) ? INFINITY : std::max(m, d);
  }
  return m;
}

TEST(KvPolicyCheckpoint, PrunedCachesMatchTheReferenceForEveryChunking) {
  const auto doc = nlohmann::json::parse(testing::ReadFile(KvPolicyDataDir() + "/checkpoint_cases.json"));
  const std::vector<float> blob =
      testing::ReadF32File(KvPolicyDataDir() + "/" + doc["logits_file"].get<std::string>());
  const int steps = doc["logit_steps"];
  ASSERT_GE(doc["models"].size(), 3u);
  int settings_checked = 0;
  for (const auto& m : doc["models"]) {
    const std::string name = m["model"];
    SCOPED_TRACE(name);
    auto cfg = LoadModelConfig(ModelDir(name));
    ASSERT_TRUE(cfg.ok());
    // DMS checkpoints are served with a dense cache (--kv-policy dense or a training-free default).
    auto backend = MakeBackend(name, /*force_dense=*/cfg->dms.enabled);
    ASSERT_FALSE(backend->info().dms_eviction);
    const std::vector<int32_t> prompt = m["prompt_tokens"].get<std::vector<int32_t>>();
    const int P = static_cast<int>(prompt.size()), L = cfg->num_layers, V = cfg->vocab_size;
    const KvPolicyParams params = testing::ParamsFrom(m["params"]);
    double worst_score = 0;
    float worst_logit = 0;
    for (const auto& [chunking, chunks] : PolicyChunkings(P)) {
      SCOPED_TRACE(chunking);
      for (const auto& s : m["settings"]) {
        const std::string policy = s["policy"];
        SCOPED_TRACE(policy + " ratio " + s["compression_ratio"].dump() + " protect " +
                     s["protect_tokens"].dump());
        GenerationRequest req;
        req.kv_policy = testing::KindFrom(s["policy"]);
        req.compression_ratio = s["compression_ratio"];
        req.protect_tokens = s["protect_tokens"];
        KvPolicySpec spec = MakeKvPolicySpec(req, P);
        spec.params = params;

        SeqId seq = *backend->CreateSequence();
        ASSERT_TRUE(backend->SetKvCapture(seq, KvCaptureFor(spec.kind, spec.params)).ok());
        std::vector<float> prefill_logits;
        ASSERT_TRUE(FeedChunks(*backend, seq, prompt, chunks, &prefill_logits).ok());
        // The first token comes from the dense prefill.
        const float* last = &prefill_logits[static_cast<size_t>(P - 1) * V];
        EXPECT_EQ(std::max_element(last, last + V) - last, m["dense_first_token"].get<int>());

        // Scores of every (layer, head) before pruning.
        for (int l = 0; l < L; ++l) {
          std::vector<KvHeadScores> heads;
          ASSERT_TRUE(backend->ScoreKvLayer(seq, l, spec, &heads).ok());
          for (int h = 0; h < cfg->num_kv_heads; ++h) {
            const double d =
                testing::MaxRelScoreDiff(heads[h].scores, testing::ScoresFrom(m["scores"][policy][l][h]));
            EXPECT_LE(d, kScoreTolerance) << "layer " << l << " head " << h;
            worst_score = std::max(worst_score, d);
          }
        }
        Status applied = ApplyKvPolicy(*backend, seq, spec);
        ASSERT_TRUE(applied.ok()) << applied.ToString();
        int64_t retained = 0;
        for (int l = 0; l < L; ++l) {
          const auto want = s["kept_positions"][l].get<std::vector<std::vector<int32_t>>>();
          EXPECT_EQ(HeldPositions(*backend, seq, l), want) << "layer " << l;
          for (const auto& h : want) retained += h.size();
        }
        const SequenceKvStats stats = backend->SequenceStats(seq);
        int64_t held = 0;
        for (const auto& layer : stats.retained)
          for (int r : layer) held += r;
        EXPECT_EQ(held, retained);
        EXPECT_EQ(stats.logical_tokens, P);
        EXPECT_GT(stats.compression_ratio, 1.0);
        // The capture is gone: scoring again needs a new one.
        if (KvCaptureFor(spec.kind, spec.params).any()) {
          std::vector<KvHeadScores> heads;
          EXPECT_EQ(backend->ScoreKvLayer(seq, 0, spec, &heads).code(), StatusCode::kFailedPrecondition);
        }

        // Decode on the pruned cache: the reference's tokens, one step at a
        // time for one prefill, as one chunk otherwise (chunking invariance).
        const std::vector<int32_t> greedy = s["greedy_tokens"].get<std::vector<int32_t>>();
        std::vector<int> decode_chunks(steps, 1);
        if (chunking != "one prefill") decode_chunks = {steps};
        std::vector<float> got;
        ASSERT_TRUE(FeedChunks(*backend, seq, std::span<const int32_t>(greedy).first(steps), decode_chunks, &got).ok());
        const float d = MaxAbsDiff(got, testing::Slice(blob, s["decode_logits"]));
        EXPECT_LE(d, kLogitTolerance);
        worst_logit = std::max(worst_logit, d);
        backend->ReleaseSequence(seq);
        ++settings_checked;
      }
    }
    std::printf("%-26s max rel score diff %.2g, max |decode logit diff| %.2g\n", name.c_str(), worst_score,
                worst_logit);
    EXPECT_EQ(backend->PoolStats().blocks_used, 0);
  }
  EXPECT_GE(settings_checked, 3 * 3 * 12);
}

// `--kv-policy dense` on a DMS checkpoint: its decisions are ignored and the
// logits are the reference's with a dense cache, for any chunking; served
// with DMS, the same tokens give clearly different logits.
TEST(KvPolicyCheckpoint, DenseOnADmsCheckpointEqualsTheDenseReference) {
  const auto doc = nlohmann::json::parse(testing::ReadFile(KvPolicyDataDir() + "/checkpoint_cases.json"));
  ASSERT_GE(doc["dense"].size(), 2u);
  for (const auto& d : doc["dense"]) {
    const std::string name = d["model"];
    SCOPED_TRACE(name);
    const std::vector<float> want = testing::ReadF32File(KvPolicyDataDir() + "/" + d["logits_file"].get<std::string>());
    const auto golden = nlohmann::json::parse(testing::ReadFile(ModelDir(name) + "/golden.json"));
    const std::vector<int32_t> tokens = golden["tokens"].get<std::vector<int32_t>>();
    const int T = static_cast<int>(tokens.size());
    auto dense = MakeBackend(name, /*force_dense=*/true);
    for (const auto& [chunking, chunks] : PolicyChunkings(T)) {
      SCOPED_TRACE(chunking);
      SeqId seq = *dense->CreateSequence();
      std::vector<float> got;
      ASSERT_TRUE(FeedChunks(*dense, seq, tokens, chunks, &got).ok());
      EXPECT_LE(MaxAbsDiff(got, want), kLogitTolerance);
      for (const auto& layer : dense->SequenceStats(seq).retained)
        for (int r : layer) EXPECT_EQ(r, T) << "a dense cache keeps every token";
      dense->ReleaseSequence(seq);
    }
    auto dms = MakeBackend(name, /*force_dense=*/false);
    SeqId seq = *dms->CreateSequence();
    std::vector<float> got;
    ASSERT_TRUE(FeedChunks(*dms, seq, tokens, {T}, &got).ok());
    EXPECT_GT(MaxAbsDiff(got, want), 1.0f) << "DMS eviction changes these logits";
  }
}

}  // namespace
}  // namespace dms
