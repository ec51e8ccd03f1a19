// CudaKvCache: the DMS KV cache of the CUDA backend. The cache itself (pool,
// per-head lengths, page tables, window rings) lives in device memory and is
// changed only by kernels (kernels/kv_append.h), so a step needs no host
// round trip. The host keeps a mirror for admission control and statistics:
// block ownership (a free list and each head's page table) and each head's
// length, which is exact after every step (copied back with the logits).
//
// Blocks are reserved worst case before a step (as DmsKvCache::Reserve: no
// eviction assumed) and the unused ones are returned after it (Trim), from
// the exact lengths. Sequence ids are slots [0, max_sequences) of the fixed
// device page tables.
//
// Threading: not thread-safe; owned by the backend's driving thread.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/cuda/device_memory.h"
#include "engine/kv/dms_kv_cache.h"
#include "engine/util/status.h"
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
  void FreeSequence(SeqId seq);
  bool HasSequence(SeqId seq) const;
  int LogicalTokens(SeqId seq) const;
  int MaxHeadLength(SeqId seq) const;

  int BlocksNeeded(SeqId seq, int num_new_tokens) const;
  int num_free_blocks() const { return static_cast<int>(free_.size()); }
  // Allocates the blocks for num_new_tokens more tokens in every head and
  // queues the page-table writes (see updates()).
  Status Reserve(SeqId seq, int num_new_tokens);
  // Page-table writes queued since ClearUpdates: pairs (flat index, block).
  const std::vector<int32_t>& updates() const { return updates_; }
  void ClearUpdates() { updates_.clear(); }

  // After a step appended num_new_tokens to seq: takes the heads' lengths
  // from `lengths` (the device's head_len array, copied back) and returns
  // the blocks eviction left unused.
  void CommitStep(SeqId seq, int num_new_tokens, const int32_t* lengths);

  SequenceKvStats SequenceStats(SeqId seq) const;
  KvPoolStats PoolStats() const;

  // Training-free KV policies (cuda_kv_policy.cc). The host side of
  // DmsKvCache::Compact for one head; the device side is
  // cuda::LaunchKvCompactLayer.
  // Retained slots of one head (0 for an unknown sequence or head).
  int HeadLength(SeqId seq, int layer, int head) const;
  // DmsKvCache::Compact's refusals, in its order: INVALID_ARGUMENT for an
  // unknown sequence, layer or head; FAILED_PRECONDITION on an evicting (DMS)
  // cache; INVALID_ARGUMENT unless `kept` ascends strictly within [0, len).
  Status CheckCompaction(SeqId seq, int layer, int head, std::span<const int32_t> kept) const;
  // After the device kept `kept` slots of the head: its new length, and the
  // blocks past ceil(kept / block_size) back to the free list (last first,
  // as DmsKvCache::Compact). Their page-table entries on the device go stale;
  // Reserve writes new ones before any step reads past the length.
  void CommitCompaction(SeqId seq, int layer, int head, int kept);

 private:
  struct HeadState {
    std::vector<int32_t> blocks;
    int length = 0;
  };
  struct SeqState {
    bool live = false;
    int num_tokens = 0;
    std::vector<HeadState> heads;  // [layers * kv_heads]
  };

  explicit CudaKvCache(const CudaKvConfig& config) : config_(config) {}

  CudaKvConfig config_;
  Arena arena_;
  cuda::KvDeviceView view_;
  std::vector<SeqState> seqs_;
  std::vector<int32_t> free_;      // free block ids (a stack)
  std::vector<SeqId> free_slots_;  // free sequence slots (a stack)
  std::vector<int32_t> updates_;
};

}  // namespace dms
