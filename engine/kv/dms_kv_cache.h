// DmsKvCache: the compacting per-head paged KV cache of DMS (spec section 4),
// the CPU backend's: host storage (KvBlockStorage), the block bookkeeping
// every backend shares (KvBlockManager) and the per-head window rings.
//
// One page table per (sequence, layer, KV head), each with its own length.
// Slots [0, length) of a head are always all valid ("compact"): when the
// token leaving the W+1 window is marked evicted (its successor decided 1),
// the token being appended takes over its slot, so the cache holds exactly
//   retained(T) = min(T, W+1) + #{ j < T-W-1 : d[j+1] == 0 }
// entries and memory tracks the retained count, not the sequence length.
// A window of kDenseWindow disables eviction (plain Qwen3: a dense cache).
//
// Per head we also keep a ring of the last W+1 positions: the slot of each and
// the eviction mark its successor set (unknown, 0, for the newest token).
//
// A step: Reserve(seq, n), Append each head's n tokens, CommitStep(seq, n).
//
// Threading: not thread-safe. Mutations (AddSequence, Reserve, CommitStep,
// FreeSequence) happen on the engine thread; during a forward step worker
// threads may read head views concurrently and append to DIFFERENT heads.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/kv/kv_block_manager.h"
#include "engine/kv/kv_block_storage.h"
#include "engine/kv/kv_types.h"
#include "common/status.h"

namespace dms {

struct KvCacheConfig {
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int window = 0;       // W; kDenseWindow for no eviction
  int block_size = 16;  // token slots per block
  int num_blocks = 0;   // pool size
};

// Read-only view of one (sequence, layer, KV head) cache, for attention.
class HeadCacheView {
 public:
  int length() const { return length_; }          // retained entries (slots)
  int num_tokens() const { return num_tokens_; }  // logical tokens appended
  const float* k(int slot) const { return pool_->k(Block(slot), Offset(slot)); }  // [head_dim]
  const float* v(int slot) const { return pool_->v(Block(slot), Offset(slot)); }  // [head_dim]
  int32_t pos(int slot) const { return pool_->pos(Block(slot), Offset(slot)); }
  // d[pos+1] for a cached position: 1 when its successor decided "evict".
  // Entries older than the window are always 0 (evicted ones are gone).
  bool EvictMarked(int32_t position) const;
  const std::vector<int32_t>& blocks() const { return *blocks_; }

 private:
  friend class DmsKvCache;
  int32_t Block(int slot) const { return (*blocks_)[slot / block_size_]; }
  int Offset(int slot) const { return slot % block_size_; }

  const KvBlockStorage* pool_ = nullptr;
  const std::vector<int32_t>* blocks_ = nullptr;
  const std::vector<uint8_t>* ring_evict_ = nullptr;
  int block_size_ = 1;
  int window_ = 0;
  int length_ = 0;
  int num_tokens_ = 0;
};

class DmsKvCache {
 public:
  explicit DmsKvCache(const KvCacheConfig& config);
  ~DmsKvCache();

  // False when the storage could not be mapped (the owner refuses the cache).
  bool ok() const { return storage_.ok(); }
  const KvCacheConfig& config() const { return config_; }

  SeqId AddSequence();
  // Returns every block of the sequence to the pool. Unknown ids are ignored.
  void FreeSequence(SeqId seq);
  bool HasSequence(SeqId seq) const { return blocks_.HasSequence(seq); }

  // Makes sure `num_new_tokens` more tokens can be appended to every head of
  // `seq` without running out of blocks (worst case: nothing evicted).
  // Allocates the blocks now; RESOURCE_EXHAUSTED (nothing allocated) if the
  // pool cannot cover it.
  Status Reserve(SeqId seq, int num_new_tokens);
  // Blocks Reserve(seq, n) would need to allocate now.
  int BlocksNeeded(SeqId seq, int num_new_tokens) const {
    return blocks_.BlocksNeeded(seq, num_new_tokens);
  }
  int num_free_blocks() const { return blocks_.num_free_blocks(); }

  // After a step that appended num_new_tokens to every head of `seq`: the
  // logical tokens grow, and blocks that Reserve took but eviction made
  // unnecessary go back (each head holds ceil(length / block_size) blocks).
  void CommitStep(SeqId seq, int num_new_tokens) { blocks_.CommitStep(seq, num_new_tokens); }

  // Appends the token at the head's next position. `k`, `v`: [head_dim],
  // RoPE already applied to k. `decision` is d[pos] of this token (1 = evict
  // its predecessor once the predecessor leaves the window). Requires Reserve.
  Status Append(SeqId seq, int layer, int head, const float* k, const float* v, bool decision);

  HeadCacheView View(SeqId seq, int layer, int head) const;

  // Training-free KV policies: keeps only `kept_slots` (strictly ascending,
  // each < length) of one head, moved to slots [0, kept) in the same order,
  // and frees the blocks no longer needed. Later appends go after them.
  // FAILED_PRECONDITION on an evicting (DMS) cache, whose window ring would
  // lose track; INVALID_ARGUMENT for a bad list (nothing changed).
  Status Compact(SeqId seq, int layer, int head, std::span<const int32_t> kept_slots);

  SequenceKvStats SequenceStats(SeqId seq) const { return blocks_.SequenceStats(seq); }
  KvPoolStats PoolStats() const { return blocks_.PoolStats(); }
  // Tokens committed (CommitStep) to the sequence; 0 for an unknown one.
  int LogicalTokens(SeqId seq) const { return blocks_.LogicalTokens(seq); }

  const KvBlockManager& blocks() const { return blocks_; }

 private:
  // A head's window ring (the page table and length are the manager's).
  struct Ring {
    int num_tokens = 0;  // logical tokens appended
    // [min(num_tokens, W+1)]: grown by Append, so memory follows the tokens
    // held rather than W (which may be as long as the context).
    std::vector<int32_t> slot;   // slot of position p at p % (W+1)
    std::vector<uint8_t> evict;  // d[p+1] for position p
  };
  int HeadIndex(int layer, int head) const { return layer * config_.num_kv_heads + head; }
  Ring& RingOf(SeqId seq, int layer, int head) {
    return rings_[seq][HeadIndex(layer, head)];
  }

  KvCacheConfig config_;
  KvBlockStorage storage_;
  KvBlockManager blocks_;
  std::vector<std::vector<Ring>> rings_;  // [SeqId][layers * kv_heads]
};

}  // namespace dms
