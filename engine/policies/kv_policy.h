// Training-free KV compression policies (docs/kv-policies.md): which policy a
// request uses, its parameters, and the shared selection rule every backend
// applies to the per-entry scores it computes.
//
// A policy runs once per sequence, right after the prompt's prefill (which
// itself attends densely), per layer and KV head: a head of n entries keeps
//   K = max(1, floor(n * (1 - compression_ratio)))
// of them: first the FORCED ones (the protected tail, and the policy's own
// always-kept positions), then the rest by score, highest first; equal scores
// go to the lower position. When the forced entries alone exceed K, all of
// them stay and nothing else does.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace dms {

enum class KvPolicyKind {
  kAuto,               // what the server's cache does natively: DMS eviction, else dense
  kDense,              // no pruning (refused where the cache evicts by DMS)
  kKnorm,              // score = -||k||
  kSnapKv,             // attention of the last queries to the earlier keys
  kStreaming,          // sinks + the most recent entries
  kExpectedAttention,  // attention expected from future queries (query statistics)
};

// "auto", "dense", "knorm", "snapkv", "streaming", "expected-attention".
const char* KvPolicyName(KvPolicyKind kind);
// The inverse; INVALID_ARGUMENT "<field>: expected one of auto, dense, knorm,
// snapkv, streaming, expected-attention; got 'x'".
StatusOr<KvPolicyKind> ParseKvPolicy(std::string_view name, std::string_view field);
// knorm, snapkv, streaming, expected-attention: they prune after prefill.
bool IsTrainingFree(KvPolicyKind kind);
// INVALID_ARGUMENT "<field> must be in [0, 1), got x" unless 0 <= r < 1.
Status ValidateCompressionRatio(double ratio, std::string_view field);

// Fixed parameters (kvpress's defaults; tests use smaller ones).
struct KvPolicyParams {
  int window = 64;            // snapkv: observation window (last prompt queries, always kept)
  int pool_kernel = 5;        // snapkv: width of the average pool (odd)
  int sinks = 4;              // streaming, expected-attention: first positions always kept
  int future_positions = 512; // expected-attention: positions the average RoPE rotation spans
};

struct KvPolicySpec {
  KvPolicyKind kind = KvPolicyKind::kAuto;
  double compression_ratio = 0.0;  // [0, 1)
  int num_tokens = 0;              // T: the prompt length when the policy runs
  int protect_from = 0;            // positions >= protect_from are never pruned
  KvPolicyParams params;
};

// What a backend must record while a sequence is prefilled so that the policy
// can score it afterwards.
struct KvCaptureSpec {
  int last_queries = 0;  // keep the last n queries (RoPE applied) of every layer: snapkv
  int stats_from = -1;   // >= 0: sum the pre-RoPE queries (and their outer
                         // products) of positions >= stats_from: expected-attention
  bool any() const { return last_queries > 0 || stats_from >= 0; }
};
KvCaptureSpec KvCaptureFor(KvPolicyKind kind, const KvPolicyParams& params);

// One KV head's entries as a backend scored them, in slot order.
struct KvHeadScores {
  std::vector<int32_t> positions;  // [n] logical position of each slot
  std::vector<double> scores;      // [n] higher = more worth keeping (forced entries: any value)
};

// max(1, floor(n * (1 - ratio))) computed as kvpress does (double arithmetic).
int64_t KvKeepCount(int64_t n, double ratio);
// True when the entry at `position` is kept whatever its score.
bool KvForced(const KvPolicySpec& spec, int32_t position);
// The slots to keep (ascending), by the rule at the top of this file.
std::vector<int32_t> SelectKeptSlots(const KvHeadScores& head, const KvPolicySpec& spec);

}  // namespace dms
