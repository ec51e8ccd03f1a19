#include "engine/kv/kv_capacity.h"

#include <algorithm>
#include <cmath>

#include "engine/kv/kv_types.h"

namespace dms {

double ProjectedEntriesPerHead(int64_t tokens, const KvFootprint& f) {
  const double t = static_cast<double>(std::max<int64_t>(tokens, 0));
  if (f.window == kDenseWindow) return t;
  const double w1 = f.window + 1.0;
  return std::min(t, w1) + std::max(0.0, t - w1) / std::max(f.live_ratio, 1.0);
}

int64_t ProjectedBlocks(int64_t tokens, const KvFootprint& f) {
  const double per_head = ProjectedEntriesPerHead(tokens, f);
  const int64_t blocks_per_head = static_cast<int64_t>(std::ceil(per_head / f.block_size));
  return blocks_per_head * f.heads;
}

}  // namespace dms
