// CudaKvCache: the DMS KV cache of the CUDA backend. The cache itself (pool,
// per-head lengths, page tables, window rings) lives in device memory and is
// changed only by kernels (kernels/kv_append.h), so a step needs no host
// round trip. The host side is the block bookkeeping every backend shares
// (KvBlockManager): block ownership, each head's page table and its length,
// which is exact after every step (copied back with the logits).
//
// Blocks are reserved worst case before a step (no eviction assumed), the
// page-table entries that changed go to the device (updates()), and the
// unused blocks are returned after it (CommitStep), from the exact lengths.
// Sequence ids are slots [0, max_sequences) of the fixed device page tables.
//
// Threading: not thread-safe; owned by the backend's driving thread.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/cuda/device_memory.h"
#include "engine/kv/kv_block_manager.h"
#include "engine/kv/kv_types.h"
#include "common/status.h"
#include "kernels/kernel_types.h"

namespace dms {

struct CudaKvConfig {
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int window = 0;          // W, or kDenseWindow
  int block_size = 16;
  int num_blocks = 0;
  int max_sequences = 0;
  int max_blocks_per_head = 0;
  cuda::KvDType dtype = cuda::KvDType::kBF16;
};

class CudaKvCache {
 public:
  static StatusOr<std::unique_ptr<CudaKvCache>> Create(const CudaKvConfig& config);
  // Device bytes Create(config) allocates: per block K, V and positions; per
  // sequence slot page tables, lengths and the eviction ring.
  static int64_t DeviceBytesFor(const CudaKvConfig& config);
  // The most blocks (at least 1, at most INT32_MAX) whose cache fits `budget`
  // device bytes with config's tables (max_blocks_per_head as given: lowering
  // it afterwards to min(it, blocks) only shrinks the cache).
  static int BlocksWithin(const CudaKvConfig& config, int64_t budget);

  const CudaKvConfig& config() const { return config_; }
  cuda::KvDeviceView view() const { return view_; }
  int64_t block_bytes() const;   // K and V of one block
  size_t device_bytes() const { return arena_.planned(); }
  int heads_per_sequence() const { return config_.num_layers * config_.num_kv_heads; }

  // A fresh sequence slot; its device state is cleared on `stream`.
  StatusOr<SeqId> AddSequence(cudaStream_t stream);
  void FreeSequence(SeqId seq) { blocks_.FreeSequence(seq); }
  bool HasSequence(SeqId seq) const { return blocks_.HasSequence(seq); }
  int LogicalTokens(SeqId seq) const { return blocks_.LogicalTokens(seq); }
  int MaxHeadLength(SeqId seq) const { return blocks_.MaxLength(seq); }

  int BlocksNeeded(SeqId seq, int num_new_tokens) const {
    return blocks_.BlocksNeeded(seq, num_new_tokens);
  }
  int num_free_blocks() const { return blocks_.num_free_blocks(); }
  // Allocates the blocks for num_new_tokens more tokens in every head and
  // queues the page-table writes (see updates()).
  Status Reserve(SeqId seq, int num_new_tokens);
  // Page-table writes queued since ClearUpdates: pairs (flat index into
  // view().page_table, block).
  const std::vector<int32_t>& updates() const { return updates_; }
  void ClearUpdates() { updates_.clear(); }

  // After a step appended num_new_tokens to seq: takes the heads' lengths
  // from `lengths` (the device's head_len array of every slot, copied back)
  // and returns the blocks eviction left unused.
  void CommitStep(SeqId seq, int num_new_tokens, const int32_t* lengths) {
    blocks_.CommitStep(seq, num_new_tokens,
                       {lengths + static_cast<int64_t>(seq) * heads_per_sequence(),
                        static_cast<size_t>(heads_per_sequence())});
  }

  SequenceKvStats SequenceStats(SeqId seq) const { return blocks_.SequenceStats(seq); }
  const KvBlockManager& blocks() const { return blocks_; }
  KvPoolStats PoolStats() const { return blocks_.PoolStats(); }

  // Training-free KV policies (cuda_kv_policy.cc): the host side of
  // DmsKvCache::Compact for one head; the device side is
  // cuda::LaunchKvCompactLayer.
  // Retained slots of one head (0 for an unknown sequence or head).
  int HeadLength(SeqId seq, int layer, int head) const;
  // KvBlockManager::CheckCompaction for this cache.
  Status CheckCompaction(SeqId seq, int layer, int head, std::span<const int32_t> kept) const {
    return blocks_.CheckCompaction(seq, layer, head, config_.window != kDenseWindow, kept);
  }
  // After the device kept `kept` slots of the head: its new length, and the
  // blocks past ceil(kept / block_size) back to the pool. Their page-table
  // entries on the device go stale; Reserve writes new ones before any step
  // reads past the length.
  void CommitCompaction(SeqId seq, int layer, int head, int kept) {
    blocks_.Truncate(seq, layer * config_.num_kv_heads + head, kept);
  }

 private:
  CudaKvCache(const CudaKvConfig& config, const KvBlockManagerConfig& blocks)
      : config_(config), blocks_(blocks) {}

  CudaKvConfig config_;
  Arena arena_;
  cuda::KvDeviceView view_;
  KvBlockManager blocks_;
  std::vector<int32_t> updates_;
};

}  // namespace dms
