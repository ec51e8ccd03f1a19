#include "engine/policies/kv_policy.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "engine/util/text_escape.h"

namespace dms {
namespace {

struct NamedKind {
  KvPolicyKind kind;
  const char* name;
};
constexpr NamedKind kKinds[] = {
    {KvPolicyKind::kAuto, "auto"},
    {KvPolicyKind::kDense, "dense"},
    {KvPolicyKind::kKnorm, "knorm"},
    {KvPolicyKind::kSnapKv, "snapkv"},
    {KvPolicyKind::kStreaming, "streaming"},
    {KvPolicyKind::kExpectedAttention, "expected-attention"},
};

}  // namespace

const char* KvPolicyName(KvPolicyKind kind) {
  for (const NamedKind& k : kKinds) {
    if (k.kind == kind) return k.name;
  }
  return "auto";
}

StatusOr<KvPolicyKind> ParseKvPolicy(std::string_view name, std::string_view field) {
  for (const NamedKind& k : kKinds) {
    if (name == k.name) return k.kind;
  }
  return InvalidArgumentError(std::string(field) +
                              ": expected one of auto, dense, knorm, snapkv, streaming, "
                              "expected-attention; got '" +
                              EscapeText(name, 64) + "'");
}

bool IsTrainingFree(KvPolicyKind kind) {
  return kind == KvPolicyKind::kKnorm || kind == KvPolicyKind::kSnapKv ||
         kind == KvPolicyKind::kStreaming || kind == KvPolicyKind::kExpectedAttention;
}

Status ValidateCompressionRatio(double ratio, std::string_view field) {
  if (std::isfinite(ratio) && ratio >= 0.0 && ratio < 1.0) return OkStatus();
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%g", ratio);
  return InvalidArgumentError(std::string(field) + " must be in [0, 1), got " + buf);
}

KvCaptureSpec KvCaptureFor(KvPolicyKind kind, const KvPolicyParams& params) {
  KvCaptureSpec c;
  if (kind == KvPolicyKind::kSnapKv) c.last_queries = params.window;
  if (kind == KvPolicyKind::kExpectedAttention) c.stats_from = params.sinks;
  return c;
}

int64_t KvKeepCount(int64_t n, double ratio) {
  // int(n * (1 - ratio)) in kvpress: truncation of the same double product.
  const auto kept = static_cast<int64_t>(static_cast<double>(n) * (1.0 - ratio));
  return std::max<int64_t>(1, kept);
}

bool KvForced(const KvPolicySpec& spec, int32_t position) {
  if (position >= spec.protect_from) return true;
  switch (spec.kind) {
    case KvPolicyKind::kSnapKv:
      return position >= spec.num_tokens - spec.params.window;
    case KvPolicyKind::kStreaming:
    case KvPolicyKind::kExpectedAttention:
      return position < spec.params.sinks;
    default:
      return false;
  }
}

std::vector<int32_t> SelectKeptSlots(const KvHeadScores& head, const KvPolicySpec& spec) {
  const int64_t n = static_cast<int64_t>(head.positions.size());
  const int64_t budget = KvKeepCount(n, spec.compression_ratio);
  std::vector<int32_t> kept, rest;
  for (int32_t s = 0; s < n; ++s) (KvForced(spec, head.positions[s]) ? kept : rest).push_back(s);
  const int64_t room = std::max<int64_t>(0, budget - static_cast<int64_t>(kept.size()));
  if (room > 0) {
    // Highest score first; ties go to the lower position.
    // A NaN score (broken weights) ranks lowest instead of breaking the order.
    auto score = [&](int32_t s) { return std::isnan(head.scores[s]) ? -INFINITY : head.scores[s]; };
    auto better = [&](int32_t a, int32_t b) {
      if (score(a) != score(b)) return score(a) > score(b);
      return head.positions[a] < head.positions[b];
    };
    const int64_t take = std::min<int64_t>(room, rest.size());
    std::partial_sort(rest.begin(), rest.begin() + take, rest.end(), better);
    kept.insert(kept.end(), rest.begin(), rest.begin() + take);
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

}  // namespace dms
