// One KV head's entries scored by a request's policy, from host copies of
// what the backend holds: the head's keys (and values), their positions, and
// what it captured while the prompt was prefilled. Both backends call this
// after gathering one layer (the CPU backend from its cache, the CUDA backend
// from a device gather copied to pinned memory), so their scores agree up to
// the cache's dtype.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/policies/kv_policy.h"

namespace dms {

struct KvHeadScoreInputs {
  int head = 0;                          // KV head h: query heads [h * g, (h + 1) * g)
  int head_dim = 0;
  int group = 0;                         // g
  int num_q_heads = 0;                   // Hq
  std::span<const float> keys;           // [n, hd]
  std::span<const float> values;         // [n, hd]; expected-attention only
  std::span<const int32_t> positions;    // [n]
  // snapkv: the captured window's queries [m, Hq, hd] (RoPE applied) and positions [m].
  std::span<const float> window_queries;
  std::span<const int32_t> window_positions;
  // expected-attention: the group's pre-RoPE query statistics.
  int64_t query_count = 0;
  std::span<const double> query_sum;     // [g, hd]
  std::span<const double> query_outer;   // [g, hd, hd]
  std::span<const double> inv_freq;      // [hd / 2]
};

// The scores of the n entries (higher: keep); empty for a kind without scores.
std::vector<double> ScoreKvHead(const KvPolicySpec& spec, const KvHeadScoreInputs& in);

// The snapkv window out of a ring of captured queries: the slots whose
// positions lie in [num_tokens - window, num_tokens), oldest first.
// ring: [slots, qdim]; ring_pos: [slots] (-1: never written).
void SnapKvWindowFromRing(std::span<const float> ring, std::span<const int32_t> ring_pos, size_t qdim,
                          int num_tokens, int window, std::vector<float>* queries,
                          std::vector<int32_t>* positions);

}  // namespace dms
