#include "engine/core/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

namespace dms {
namespace {

std::vector<float> LogitsFromProbs(const std::vector<double>& p) {
  std::vector<float> l;
  for (double x : p) l.push_back(static_cast<float>(std::log(x)));
  return l;
}

std::map<int, int> Histogram(const SamplingParams& params, const std::vector<float>& logits,
                             int draws, uint64_t seed = 7) {
  Sampler s(params, seed, static_cast<int>(logits.size()));
  std::map<int, int> h;
  for (int i = 0; i < draws; ++i) ++h[s.Sample(logits).id];
  return h;
}

TEST(SamplingParams, RejectsBadValuesWithClearMessages) {
  auto check = [](SamplingParams p, const std::string& msg) {
    Status st = ValidateSamplingParams(p);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(st.message(), msg);
  };
  SamplingParams p;
  EXPECT_TRUE(ValidateSamplingParams(p).ok());
  p = {}; p.temperature = -1; check(p, "temperature must be >= 0 and finite, got -1");
  p = {}; p.temperature = NAN; check(p, "temperature must be >= 0 and finite, got nan");
  p = {}; p.top_p = 0; check(p, "top_p must be in (0, 1], got 0");
  p = {}; p.top_p = 1.5; check(p, "top_p must be in (0, 1], got 1.5");
  p = {}; p.top_p = NAN; check(p, "top_p must be in (0, 1], got nan");
  p = {}; p.top_k = -2; check(p, "top_k must be >= 0 (0 or -1 disables it), got -2");
  p = {}; p.min_p = 1.5; check(p, "min_p must be in [0, 1], got 1.5");
  p = {}; p.repetition_penalty = 0; check(p, "repetition_penalty must be > 0 and finite, got 0");
  p = {}; p.presence_penalty = 3; check(p, "presence_penalty must be in [-2, 2], got 3");
  p = {}; p.frequency_penalty = -2.5; check(p, "frequency_penalty must be in [-2, 2], got -2.5");
  p = {}; p.logprobs = 21; check(p, "logprobs must be in [0, 20], got 21");
}

TEST(Sampler, GreedyIsArgmaxWithLowestIdOnTies) {
  SamplingParams p;
  p.temperature = 0;
  Sampler s(p, 1, 5);
  EXPECT_EQ(s.Sample(std::vector<float>{0, 3, 1, 3, -1}).id, 1);
  p.temperature = 0.7f;
  p.top_k = 1;
  Sampler s2(p, 1, 3);
  EXPECT_EQ(s2.Sample(std::vector<float>{0, 1, 5}).id, 2);
}

TEST(Sampler, SameSeedSameOutputDifferentSeedDifferentOutput) {
  std::vector<float> logits(50);
  for (int i = 0; i < 50; ++i) logits[i] = std::sin(i * 0.7f);
  SamplingParams p;
  auto run = [&](uint64_t seed) {
    Sampler s(p, seed, 50);
    std::vector<int> ids;
    for (int i = 0; i < 40; ++i) ids.push_back(s.Sample(logits).id);
    return ids;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(Sampler, TemperatureOneMatchesTheDistribution) {
  const std::vector<double> probs = {0.5, 0.25, 0.125, 0.125};
  auto h = Histogram(SamplingParams{}, LogitsFromProbs(probs), 40000);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(h[i] / 40000.0, probs[i], 0.01) << i;
}

TEST(Sampler, TopKTopPMinPCutTheTail) {
  const auto logits = LogitsFromProbs({0.4, 0.3, 0.2, 0.06, 0.04});
  SamplingParams p;
  p.top_k = 2;
  auto h = Histogram(p, logits, 5000);
  EXPECT_EQ(h.size(), 2u);
  EXPECT_NEAR(h[0] / 5000.0, 0.4 / 0.7, 0.02);

  p = {};
  p.top_p = 0.65f;  // 0.4 + 0.3 reaches it
  h = Histogram(p, logits, 5000);
  EXPECT_EQ(h.size(), 2u);

  p = {};
  p.min_p = 0.45f;  // keeps p >= 0.18: ids 0, 1, 2
  h = Histogram(p, logits, 5000);
  EXPECT_EQ(h.size(), 3u);
  EXPECT_EQ(h.count(3), 0u);
}

TEST(Sampler, RepetitionPenaltyFollowsTheHfRule) {
  SamplingParams p;
  p.temperature = 0;
  p.repetition_penalty = 2.0f;
  Sampler s(p, 0, 3);
  const int32_t prompt[] = {0, 2};
  s.AddPromptTokens(prompt);
  // 0: 3 -> 1.5; 1: 2 (unseen); 2: -1 -> -2.
  EXPECT_EQ(s.Sample(std::vector<float>{3, 2, -1}).id, 1);
}

TEST(Sampler, PresenceAndFrequencyPenaltiesDiscourageRepeats) {
  SamplingParams p;
  p.temperature = 0;
  p.frequency_penalty = 0.6f;
  p.presence_penalty = 0.5f;
  Sampler s(p, 0, 2);
  const std::vector<float> logits = {1.0f, 0.0f};
  EXPECT_EQ(s.Sample(logits).id, 0);  // 1.0 vs 0
  EXPECT_EQ(s.Sample(logits).id, 1);  // 1.0 - 1.1 < 0
}

TEST(Sampler, LogprobsAreTheModelsLogSoftmax) {
  SamplingParams p;
  p.temperature = 0;
  p.logprobs = 2;
  Sampler s(p, 0, 3);
  const auto logits = LogitsFromProbs({0.2, 0.5, 0.3});
  SampledToken t = s.Sample(logits);
  EXPECT_EQ(t.id, 1);
  EXPECT_NEAR(t.logprob, std::log(0.5), 1e-6);
  ASSERT_EQ(t.top.size(), 2u);
  EXPECT_EQ(t.top[0].first, 1);
  EXPECT_EQ(t.top[1].first, 2);
  EXPECT_NEAR(t.top[1].second, std::log(0.3), 1e-6);
}

TEST(Sampler, SummaryGivesTheRowsGreedyTokenAndLogprob) {
  std::vector<float> logits(1000);
  for (int i = 0; i < 1000; ++i) logits[i] = 8 * std::sin(i * 1.3f);
  logits[700] = logits[333] = 9.5f;  // a tie: the lower id wins on both paths
  const LogitSummary sum = SummarizeLogits(logits);
  EXPECT_EQ(sum.argmax, 333);
  EXPECT_EQ(sum.max_logit, 9.5f);
  double want = 0;
  for (float x : logits) want += std::exp(static_cast<double>(x) - 9.5);
  EXPECT_DOUBLE_EQ(sum.log_sum_exp, std::log(want) + 9.5);
  SamplingParams p;
  p.temperature = 0;
  Sampler by_row(p, 1, 1000), by_summary(p, 1, 1000);
  ASSERT_FALSE(by_summary.NeedsFullLogits());
  const SampledToken a = by_row.Sample(logits), b = by_summary.SampleFromSummary(sum);
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.logprob, b.logprob);  // bit for bit: the same arithmetic
  EXPECT_EQ(by_summary.num_generated(), 1);
}

TEST(Sampler, OnlyPlainGreedyDecodingSkipsTheRow) {
  auto needs = [](SamplingParams p) { return Sampler(p, 1, 10).NeedsFullLogits(); };
  SamplingParams p;
  p.temperature = 0;
  EXPECT_FALSE(needs(p));
  p.top_k = 1;
  p.temperature = 0.8f;
  EXPECT_FALSE(needs(p));  // top-k 1 is greedy
  p = {};
  p.temperature = 0.8f;
  EXPECT_TRUE(needs(p));
  // Greedy, but each of these reads the whole row.
  for (auto change : {+[](SamplingParams& q) { q.repetition_penalty = 1.2f; },
                      +[](SamplingParams& q) { q.presence_penalty = 0.5f; },
                      +[](SamplingParams& q) { q.frequency_penalty = 0.5f; },
                      +[](SamplingParams& q) { q.logprobs = 2; }}) {
    p = {};
    p.temperature = 0;
    change(p);
    EXPECT_TRUE(needs(p));
  }
}

}  // namespace
}  // namespace dms
