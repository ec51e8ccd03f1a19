#include "engine/kv/kv_block_pool.h"

#include <algorithm>
#include <cassert>
#include <string>

namespace dms {

KvBlockPool::KvBlockPool(int num_blocks, int block_size, int head_dim)
    : num_blocks_(num_blocks),
      block_size_(block_size),
      head_dim_(head_dim),
      memory_(static_cast<size_t>(num_blocks) * block_size * (2 * head_dim * sizeof(float) + sizeof(int32_t))),
      in_use_(num_blocks, 0) {
  if (!memory_.ok()) {
    num_blocks_ = 0;  // Allocate() refuses; the owner reports !ok()
    return;
  }
  storage_ = static_cast<float*>(memory_.data());
  positions_ = reinterpret_cast<int32_t*>(storage_ + static_cast<size_t>(num_blocks) * 2 * block_size * head_dim);
}

StatusOr<int32_t> KvBlockPool::Allocate() {
  // Returned blocks first (most recent first), then never-used ones in id
  // order: low ids first, as a stack pre-filled with every id would give.
  int32_t b;
  if (!free_.empty()) {
    b = free_.back();
    free_.pop_back();
  } else if (next_unused_ < num_blocks_) {
    b = next_unused_++;
  } else {
    return ResourceExhaustedError("KV block pool exhausted: all " + std::to_string(num_blocks_) +
                                  " blocks of " + std::to_string(block_size_) +
                                  " tokens are in use");
  }
  in_use_[b] = 1;
  std::fill_n(&positions_[static_cast<size_t>(b) * block_size_], block_size_, -1);
  return b;
}

void KvBlockPool::Free(int32_t block) {
  assert(block >= 0 && block < num_blocks_ && in_use_[block]);
  if (block < 0 || block >= num_blocks_ || !in_use_[block]) return;
  in_use_[block] = 0;
  free_.push_back(block);
}

}  // namespace dms
