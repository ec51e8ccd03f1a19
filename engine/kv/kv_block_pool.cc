#include "engine/kv/kv_block_pool.h"

#include <cassert>
#include <string>

namespace dms {

KvBlockPool::KvBlockPool(int num_blocks, int block_size, int head_dim)
    : num_blocks_(num_blocks),
      block_size_(block_size),
      head_dim_(head_dim),
      storage_(new float[static_cast<size_t>(num_blocks) * 2 * block_size * head_dim]),
      positions_(static_cast<size_t>(num_blocks) * block_size, -1),
      in_use_(num_blocks, 0) {
  free_.reserve(num_blocks);
  // Hand out low ids first (stack: push in reverse).
  for (int b = num_blocks - 1; b >= 0; --b) free_.push_back(b);
}

StatusOr<int32_t> KvBlockPool::Allocate() {
  if (free_.empty()) {
    return ResourceExhaustedError("KV block pool exhausted: all " + std::to_string(num_blocks_) +
                                  " blocks of " + std::to_string(block_size_) +
                                  " tokens are in use");
  }
  int32_t b = free_.back();
  free_.pop_back();
  in_use_[b] = 1;
  return b;
}

void KvBlockPool::Free(int32_t block) {
  assert(block >= 0 && block < num_blocks_ && in_use_[block]);
  if (block < 0 || block >= num_blocks_ || !in_use_[block]) return;
  in_use_[block] = 0;
  free_.push_back(block);
}

}  // namespace dms
