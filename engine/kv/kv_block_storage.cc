#include "engine/kv/kv_block_storage.h"

#include <algorithm>
#include <cstring>

namespace dms {

KvBlockStorage::KvBlockStorage(int num_blocks, int block_size, int head_dim)
    : num_blocks_(num_blocks),
      block_size_(block_size),
      head_dim_(head_dim),
      memory_(static_cast<size_t>(num_blocks) * block_size *
              (2 * head_dim * sizeof(float) + sizeof(int32_t))) {
  if (!memory_.ok()) {
    num_blocks_ = 0;
    return;
  }
  storage_ = static_cast<float*>(memory_.data());
  positions_ = reinterpret_cast<int32_t*>(storage_ + static_cast<size_t>(num_blocks) * 2 *
                                                         block_size * head_dim);
}

void KvBlockStorage::ResetPositions(int32_t block) {
  std::fill_n(&positions_[static_cast<size_t>(block) * block_size_], block_size_, -1);
}

void KvBlockStorage::CopyBlock(int32_t from, int32_t to) {
  const size_t kv = static_cast<size_t>(2) * block_size_ * head_dim_;
  std::memcpy(&storage_[Index(to, 0, 0)], &storage_[Index(from, 0, 0)], kv * sizeof(float));
  std::memcpy(&positions_[static_cast<size_t>(to) * block_size_],
              &positions_[static_cast<size_t>(from) * block_size_], block_size_ * sizeof(int32_t));
}

}  // namespace dms
