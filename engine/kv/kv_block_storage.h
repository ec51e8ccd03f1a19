// KvBlockStorage: the host memory of the CPU backend's KV blocks.
//
// A block holds `block_size` token slots of ONE (sequence, layer, KV head):
//   k: [block_size, head_dim] float32, v: [block_size, head_dim] float32,
//   pos: [block_size] int32 (logical position of the token in the slot).
// Which block belongs to whom is KvBlockManager's business; this is only the
// memory (the CUDA backend keeps the same layout in device memory).
//
// Threading: reads and writes of DIFFERENT blocks may run concurrently (a
// CPU step's workers); the owner serialises everything else.
#pragma once

#include <cstddef>
#include <cstdint>

#include "common/lazy_memory.h"

namespace dms {

class KvBlockStorage {
 public:
  // The storage is mapped, not touched; ok() is false when the mapping failed
  // (an address-space limit), and the owner must then refuse the cache.
  KvBlockStorage(int num_blocks, int block_size, int head_dim);
  bool ok() const { return memory_.ok(); }

  int num_blocks() const { return num_blocks_; }
  int block_size() const { return block_size_; }
  int head_dim() const { return head_dim_; }

  // Marks every slot of a block as holding no position (-1): a block just
  // handed out.
  void ResetPositions(int32_t block);
  // K, V and positions of `from` into `to` (a copy-on-write).
  void CopyBlock(int32_t from, int32_t to);

  // k/v of slot `offset` (< block_size) in `block`: [head_dim] floats.
  float* k(int32_t block, int offset) { return &storage_[Index(block, offset, 0)]; }
  float* v(int32_t block, int offset) { return &storage_[Index(block, offset, 1)]; }
  const float* k(int32_t block, int offset) const { return &storage_[Index(block, offset, 0)]; }
  const float* v(int32_t block, int offset) const { return &storage_[Index(block, offset, 1)]; }
  int32_t& pos(int32_t block, int offset) {
    return positions_[static_cast<size_t>(block) * block_size_ + offset];
  }
  int32_t pos(int32_t block, int offset) const {
    return positions_[static_cast<size_t>(block) * block_size_ + offset];
  }

 private:
  size_t Index(int32_t block, int offset, int which) const {
    return ((static_cast<size_t>(block) * 2 + which) * block_size_ + offset) *
           static_cast<size_t>(head_dim_);
  }

  int num_blocks_;
  int block_size_;
  int head_dim_;
  // Nothing below is touched for blocks never handed out, so a pool sized
  // to 90% of host memory costs only the pages actually used (see
  // lazy_memory.h for the sanitizer builds).
  LazyMemory memory_;  // storage_ then positions_
  float* storage_ = nullptr;     // [num_blocks, 2 (k, v), block_size, head_dim]
  int32_t* positions_ = nullptr; // [num_blocks, block_size]
};

}  // namespace dms
