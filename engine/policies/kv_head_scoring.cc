#include "engine/policies/kv_head_scoring.h"

#include <algorithm>

#include "engine/policies/kv_scores.h"

namespace dms {

std::vector<double> ScoreKvHead(const KvPolicySpec& spec, const KvHeadScoreInputs& h) {
  const int hd = h.head_dim, g = h.group;
  switch (spec.kind) {
    case KvPolicyKind::kKnorm:
      return KnormScores(h.keys, hd);
    case KvPolicyKind::kStreaming:
      return StreamingScores(h.positions);
    case KvPolicyKind::kSnapKv: {
      // This group's g query heads of every window query: [m, g, hd].
      const size_t m = h.window_positions.size();
      const size_t gd = static_cast<size_t>(g) * hd;
      std::vector<float> q(m * gd);
      for (size_t i = 0; i < m; ++i) {
        std::copy_n(&h.window_queries[(i * h.num_q_heads + static_cast<size_t>(h.head) * g) * hd], gd, &q[i * gd]);
      }
      SnapKvInputs in;
      in.head_dim = hd;
      in.group = g;
      in.num_tokens = spec.num_tokens;
      in.window = spec.params.window;
      in.pool_kernel = spec.params.pool_kernel;
      in.keys = h.keys;
      in.positions = h.positions;
      in.queries = q;
      in.query_positions = h.window_positions;
      return SnapKvScores(in);
    }
    case KvPolicyKind::kExpectedAttention: {
      ExpectedAttentionInputs in;
      in.head_dim = hd;
      in.group = g;
      in.num_tokens = spec.num_tokens;
      in.sinks = spec.params.sinks;
      in.future_positions = spec.params.future_positions;
      in.keys = h.keys;
      in.positions = h.positions;
      in.values = h.values;
      in.query_count = h.query_count;
      in.query_sum = h.query_sum;
      in.query_outer = h.query_outer;
      in.inv_freq = h.inv_freq;
      return ExpectedAttentionScores(in);
    }
    default:
      return {};
  }
}

void SnapKvWindowFromRing(std::span<const float> ring, std::span<const int32_t> ring_pos, size_t qdim,
                          int num_tokens, int window, std::vector<float>* queries,
                          std::vector<int32_t>* positions) {
  std::vector<int> order;
  for (int i = 0; i < static_cast<int>(ring_pos.size()); ++i) {
    if (ring_pos[i] >= 0 && ring_pos[i] >= num_tokens - window) order.push_back(i);
  }
  std::sort(order.begin(), order.end(), [&](int a, int b) { return ring_pos[a] < ring_pos[b]; });
  for (int i : order) {
    positions->push_back(ring_pos[i]);
    queries->insert(queries->end(), ring.begin() + i * qdim, ring.begin() + (i + 1) * qdim);
  }
}

}  // namespace dms
