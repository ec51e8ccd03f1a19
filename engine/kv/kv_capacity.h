// The one projection of how many KV blocks a stream holds, used by the
// scheduler (admission), GetModelInfo (estimated streams) and metrics.
//
// After T tokens each (layer, KV head) of a DMS cache retains about
//   min(T, W+1) + (T - W - 1) / r
// entries, r the LIVE compression ratio of the traffic so far (1 before any:
// dense, the safe assumption); a dense cache (window kDenseWindow) retains T.
#pragma once

#include <cstdint>

namespace dms {

struct KvFootprint {
  int window = 0;          // W, or kDenseWindow (no eviction)
  double live_ratio = 1;   // measured logical / retained tokens, >= 1
  int block_size = 16;
  int heads = 0;           // layers x KV heads
};

// Entries one (layer, KV head) is projected to hold after `tokens` tokens.
double ProjectedEntriesPerHead(int64_t tokens, const KvFootprint& f);
// Blocks a stream of `tokens` is projected to hold (every head rounded up to
// whole blocks).
int64_t ProjectedBlocks(int64_t tokens, const KvFootprint& f);

}  // namespace dms
