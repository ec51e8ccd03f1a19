// The policy scores and the selection rule (engine/policies) against the
// float64 PyTorch reference on random tensors (tests/data/kv_policies/
// random_cases.json): every policy, ratios from 0 to 0.99, protected tails,
// small and default parameters, and exact ties. Kept sets must be equal.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "engine/cpu/cpu_ops.h"
#include "engine/policies/kv_policy.h"
#include "engine/policies/kv_scores.h"
#include "tests/engine/kv_policy_golden.h"

namespace dms {
namespace {

using testing::KvPolicyDataDir;
using testing::Slice;

constexpr double kScoreTolerance = 1e-9;  // relative to the head's largest score: same inputs, both float64

TEST(KvPolicyScores, RandomTensorsMatchTheReference) {
  const auto doc = nlohmann::json::parse(testing::ReadFile(KvPolicyDataDir() + "/random_cases.json"));
  const std::vector<float> blob =
      testing::ReadF32File(KvPolicyDataDir() + "/" + doc["inputs_file"].get<std::string>());
  int checked = 0;
  std::set<std::string> policies;
  for (const auto& c : doc["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const KvPolicyKind kind = testing::KindFrom(c["policy"]);
    const int hd = c["head_dim"], g = c["group"], T = c["num_tokens"];
    const std::vector<int32_t> positions = c["positions"].get<std::vector<int32_t>>();
    const std::vector<float> keys = Slice(blob, c["keys"]), values = Slice(blob, c["values"]);
    KvPolicySpec spec;
    spec.kind = kind;
    spec.compression_ratio = c["compression_ratio"];
    spec.num_tokens = T;
    spec.protect_from = c["protect_from"];
    spec.params = testing::ParamsFrom(c["params"]);

    std::vector<double> scores;
    switch (kind) {
      case KvPolicyKind::kKnorm:
        scores = KnormScores(keys, hd);
        break;
      case KvPolicyKind::kStreaming:
        scores = StreamingScores(positions);
        break;
      case KvPolicyKind::kSnapKv: {
        const std::vector<float> q = Slice(blob, c["window_queries"]);
        const std::vector<int32_t> qpos = c["window_positions"].get<std::vector<int32_t>>();
        SnapKvInputs in;
        in.head_dim = hd;
        in.group = g;
        in.num_tokens = T;
        in.window = spec.params.window;
        in.pool_kernel = spec.params.pool_kernel;
        in.keys = keys;
        in.positions = positions;
        in.queries = q;
        in.query_positions = qpos;
        scores = SnapKvScores(in);
        break;
      }
      case KvPolicyKind::kExpectedAttention: {
        // The backend's running sums, built from the raw pre-RoPE queries.
        const std::vector<float> q = Slice(blob, c["queries_pre_rope"]);
        const int64_t m = static_cast<int64_t>(q.size()) / (static_cast<int64_t>(g) * hd);
        std::vector<double> sum(static_cast<size_t>(g) * hd, 0.0), outer(sum.size() * hd, 0.0);
        for (int64_t r = 0; r < m; ++r) {
          for (int h = 0; h < g; ++h) {
            const float* v = &q[(r * g + h) * hd];
            for (int a = 0; a < hd; ++a) {
              sum[h * hd + a] += v[a];
              for (int b = 0; b < hd; ++b) outer[(h * hd + a) * hd + b] += static_cast<double>(v[a]) * v[b];
            }
          }
        }
        const std::vector<double> inv_freq = RopeInvFreq(c["rope_theta"].get<double>(), hd);
        ExpectedAttentionInputs in;
        in.head_dim = hd;
        in.group = g;
        in.num_tokens = T;
        in.sinks = spec.params.sinks;
        in.future_positions = spec.params.future_positions;
        in.keys = keys;
        in.positions = positions;
        in.values = values;
        in.query_count = m;
        in.query_sum = sum;
        in.query_outer = outer;
        in.inv_freq = inv_freq;
        scores = ExpectedAttentionScores(in);
        break;
      }
      default:
        FAIL() << "unexpected policy";
    }
    const double diff = testing::MaxRelScoreDiff(scores, testing::ScoresFrom(c["scores"]));
    EXPECT_LE(diff, kScoreTolerance);

    KvHeadScores head{positions, scores};
    std::vector<int32_t> kept_positions;
    for (int32_t s : SelectKeptSlots(head, spec)) kept_positions.push_back(positions[s]);
    EXPECT_EQ(kept_positions, c["kept_positions"].get<std::vector<int32_t>>());
    std::printf("%-30s %-18s n=%3zu kept %3zu  max rel score diff %.2g\n", name.c_str(), KvPolicyName(kind),
                positions.size(), kept_positions.size(), diff);
    policies.insert(KvPolicyName(kind));
    ++checked;
  }
  EXPECT_GE(checked, 12);
  EXPECT_EQ(policies.size(), 4u) << "every policy has random cases";
}

}  // namespace
}  // namespace dms
