// The DMS visibility rule (spec section 3), shared by every backend and test.
#pragma once

#include <cstdint>

namespace dms {

// Key j is visible to query i (same layer and KV head) iff j <= i and
// (i - j <= W or d[j+1] == 0). `successor_evicts` is d[j+1]; window < 0 means
// no eviction (dense).
inline bool DmsKeyVisible(int64_t i, int64_t j, bool successor_evicts, int window) {
  if (j > i) return false;
  if (window < 0) return true;
  return i - j <= window || !successor_evicts;
}

// Retained entries after t tokens for one head, given the decisions d[0..t):
// min(t, W+1) + #{ j < t-W-1 : d[j+1] == 0 } (spec section 4).
template <typename DecisionAt>
int64_t DmsRetainedCount(int64_t t, int window, DecisionAt d) {
  if (window < 0) return t;
  int64_t kept = t < window + 1 ? t : window + 1;
  for (int64_t j = 0; j < t - window - 1; ++j) kept += d(j + 1) ? 0 : 1;
  return kept;
}

}  // namespace dms
