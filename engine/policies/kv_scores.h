// Per-entry scores of one KV head for the training-free policies, on the host
// in double precision (the CPU backend's implementation and the oracle for a
// device one). Formulations: docs/kv-policies.md; reference:
// tests/reference/kv_policies.py. Higher = more worth keeping. Entries a
// policy always keeps (snapkv's window, the sinks) get score 0: the selection
// rule (kv_policy.h) never ranks them.
//
// Shapes: n entries of the head in position order, hd = head_dim, g query
// heads in the KV group (GQA), keys with RoPE applied as cached.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace dms {

// knorm: -||k_j||_2.   keys: [n, hd]
std::vector<double> KnormScores(std::span<const float> keys, int head_dim);

// streaming: the position itself (recent = high); sinks are forced.
std::vector<double> StreamingScores(std::span<const int32_t> positions);

struct SnapKvInputs {
  int head_dim = 0;
  int group = 0;                              // g
  int num_tokens = 0;                         // T; the window is positions [T - window, T)
  int window = 64;
  int pool_kernel = 5;
  std::span<const float> keys;                // [n, hd]
  std::span<const int32_t> positions;         // [n], ascending
  std::span<const float> queries;             // [m, g, hd]: the last m <= window queries, RoPE applied
  std::span<const int32_t> query_positions;   // [m], ascending
};
// Mean over the window queries of their causal softmax attention to each
// earlier key (position < T - window), average-pooled over neighbouring
// earlier keys (width pool_kernel, zero padding counted), then averaged over
// the g query heads.
std::vector<double> SnapKvScores(const SnapKvInputs& in);

struct ExpectedAttentionInputs {
  int head_dim = 0;
  int group = 0;                        // g
  int num_tokens = 0;                   // T: future queries sit at positions [T, T + future_positions)
  int sinks = 4;                        // positions < sinks are forced and left out
  int future_positions = 512;
  std::span<const float> keys;          // [n, hd]
  std::span<const int32_t> positions;   // [n]
  std::span<const float> values;        // [n, hd]
  // Statistics of the prompt's pre-RoPE queries (positions >= sinks) of the
  // group's g query heads: count, sum [g, hd] and sum of outer products [g, hd, hd].
  int64_t query_count = 0;
  std::span<const double> query_sum;
  std::span<const double> query_outer;
  std::span<const double> inv_freq;     // [hd / 2] RoPE frequencies
};
// Expected attention (kvpress ExpectedAttentionPress): with the query mean mu
// and covariance S moved by the average RoPE rotation R over the future
// positions, z_j = (R mu).k_j / sqrt(hd) + k_j^T (R S R^T) k_j / (2 hd);
// softmax over the non-sink entries per query head, mean over the group, times ||v_j||.
std::vector<double> ExpectedAttentionScores(const ExpectedAttentionInputs& in);

// The average over positions [first, first + count) of the RoPE rotation's
// cos and sin per frequency: cos_mean, sin_mean [hd / 2].
void AverageRope(std::span<const double> inv_freq, int64_t first, int count,
                 std::vector<double>* cos_mean, std::vector<double>* sin_mean);

}  // namespace dms
