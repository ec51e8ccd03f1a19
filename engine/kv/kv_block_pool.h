// KvBlockPool: fixed-size pages of KV storage shared by every sequence.
//
// A block holds `block_size` token slots of ONE (sequence, layer, KV head):
//   k: [block_size, head_dim] float32, v: [block_size, head_dim] float32,
//   pos: [block_size] int32 (logical position of the token in the slot).
// Blocks are handed out and returned whole; the per-head page tables that map
// slots to blocks live in DmsKvCache. Host memory (the CPU backend's cache);
// the CUDA backend keeps the same layout in device memory.
//
// Threading: not thread-safe; owned by the engine thread. Reads of block data
// from worker threads during a forward step are fine while no Allocate/Free
// happens concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/util/lazy_memory.h"
#include "engine/util/status.h"

namespace dms {

class KvBlockPool {
 public:
  // The storage is mapped, not touched; ok() is false when the mapping failed
  // (an address-space limit), and the owner must then refuse the pool.
  KvBlockPool(int num_blocks, int block_size, int head_dim);
  bool ok() const { return memory_.ok(); }

  // Returns a free block id, or RESOURCE_EXHAUSTED when none is left.
  StatusOr<int32_t> Allocate();
  void Free(int32_t block);

  int num_blocks() const { return num_blocks_; }
  int block_size() const { return block_size_; }
  int head_dim() const { return head_dim_; }
  int num_free() const { return static_cast<int>(free_.size()) + (num_blocks_ - next_unused_); }
  int num_used() const { return num_blocks_ - num_free(); }

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
  // to 90% of host memory costs only the pages actually used (a filled
  // positions array made a 5.4M-block pool take 1.9 s to construct; see
  // lazy_memory.h for the sanitizer builds).
  LazyMemory memory_;  // storage_ then positions_
  // [num_blocks, 2 (k, v), block_size, head_dim]
  float* storage_ = nullptr;
  // [num_blocks, block_size]; a block's slots are set to -1 when it is
  // handed out.
  int32_t* positions_ = nullptr;
  std::vector<int32_t> free_;   // stack of returned block ids, reused first
  int32_t next_unused_ = 0;     // blocks [next_unused_, num_blocks) never handed out
  std::vector<uint8_t> in_use_; // [num_blocks], guards double free
};

}  // namespace dms
