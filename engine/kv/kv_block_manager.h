// KvBlockManager: the host-side block bookkeeping of a paged, compacting KV
// cache -- one implementation for every backend, which keep only the storage
// (host arrays, device memory) and the code that moves data.
//
// A sequence holds one page table per (layer, KV head) ("head" below, flat
// index layer * num_kv_heads + kv_head): the blocks that store its slots
// [0, length) in order, block_size slots a block. Blocks come from one pool
// and are reference-counted: Fork gives a new sequence the same blocks (a
// prompt shared by several samples); a block with more than one holder is
// copied before a holder writes into it (MakeWritable says which copies the
// backend must make).
//
// A step, on both backends:
//   BlocksNeeded / Reserve(seq, n)   blocks for n more tokens in every head,
//                                    worst case (nothing evicted)
//   ... the backend appends; a head's length moves (SetLength, or the
//       lengths the device reports) ...
//   CommitStep(seq, n[, lengths])    n more logical tokens, the exact lengths,
//                                    and the blocks eviction left unused back
// Every page-table entry Reserve and MakeWritable set is also queued in
// table_writes() for a backend that mirrors the tables (the CUDA backend's
// device page tables, written before the step).
//
// Allocation order: returned blocks first (the last returned first), then
// never-used ones from id 0 up. Sequence ids: the last freed first, then the
// next unused.
//
// Threading: not thread-safe; owned by the thread that drives the backend.
// SetLength of DIFFERENT heads may run concurrently (a CPU step's workers).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "engine/kv/kv_types.h"
#include "common/status.h"

namespace dms {

struct KvBlockManagerConfig {
  int num_layers = 0;
  int num_kv_heads = 0;
  int block_size = 16;
  int num_blocks = 0;
  int max_sequences = 0;        // 0: unbounded; else ids are [0, max_sequences)
  int max_blocks_per_head = 0;  // 0: unbounded; else a head's page table holds at most this
};

class KvBlockManager {
 public:
  // A page-table entry that changed: entry `position` of `head`'s table of `seq`.
  struct TableWrite {
    SeqId seq;
    int head;
    int position;
    int32_t block;
  };
  // Storage the backend copies before a writer uses block `to` in place of `from`.
  struct BlockCopy {
    int32_t from;
    int32_t to;
  };

  explicit KvBlockManager(const KvBlockManagerConfig& config);

  const KvBlockManagerConfig& config() const { return config_; }
  int num_heads() const { return config_.num_layers * config_.num_kv_heads; }

  // A new, empty sequence. RESOURCE_EXHAUSTED when every id of a bounded
  // manager is taken.
  StatusOr<SeqId> AddSequence();
  // A new sequence holding `src`'s blocks (shared), lengths and tokens.
  StatusOr<SeqId> Fork(SeqId src);
  // Drops the sequence's hold on its blocks. Unknown ids are ignored.
  void FreeSequence(SeqId seq);
  bool HasSequence(SeqId seq) const;

  // Blocks Reserve(seq, n) would allocate now (0 for an unknown sequence).
  int BlocksNeeded(SeqId seq, int num_new_tokens) const;
  // Allocates, in every head, the blocks for num_new_tokens more slots past
  // its length. RESOURCE_EXHAUSTED (nothing allocated) when the pool or a
  // bounded page table cannot hold them.
  Status Reserve(SeqId seq, int num_new_tokens);
  // Makes the blocks of `head` holding slots >= first_slot private to `seq`:
  // each shared one is replaced by a fresh block, and (from, to) is appended
  // to *copies for the backend to copy. RESOURCE_EXHAUSTED when the pool runs
  // out (the blocks replaced so far stay replaced and their copies listed).
  Status MakeWritable(SeqId seq, int head, int first_slot, std::vector<BlockCopy>* copies);

  // A head's retained slots, as its appends move them (no blocks change).
  void SetLength(SeqId seq, int head, int length);
  // After a step of num_new_tokens: the logical tokens grow, each head takes
  // its exact length from `lengths` ([num_heads()], when given), and blocks
  // past ceil(length / block_size) go back (the last first).
  void CommitStep(SeqId seq, int num_new_tokens, std::span<const int32_t> lengths = {});
  // Training-free policies: the refusals of a compaction of (layer, kv_head)
  // keeping `kept` slots, in this order: INVALID_ARGUMENT for an unknown
  // sequence, layer or head; FAILED_PRECONDITION on an evicting (DMS) cache,
  // whose window ring would lose track; INVALID_ARGUMENT unless `kept`
  // ascends strictly within [0, length).
  Status CheckCompaction(SeqId seq, int layer, int kv_head, bool evicting,
                         std::span<const int32_t> kept) const;
  // After a compaction: the head keeps `length` slots; the blocks past them
  // go back (the last first).
  void Truncate(SeqId seq, int head, int length);

  const std::vector<int32_t>& PageTable(SeqId seq, int head) const;
  int Length(SeqId seq, int head) const;  // 0 for an unknown sequence
  int MaxLength(SeqId seq) const;
  int LogicalTokens(SeqId seq) const;     // 0 for an unknown sequence
  int NumBlocks(SeqId seq) const;         // blocks its page tables hold (shared ones too)
  int num_free_blocks() const;
  int RefCount(int32_t block) const;

  const std::vector<TableWrite>& table_writes() const { return table_writes_; }
  void ClearTableWrites() { table_writes_.clear(); }

  SequenceKvStats SequenceStats(SeqId seq) const;
  // Adds the sequence's retained entries of each layer (summed over its KV
  // heads) to retained[layer], and its logical tokens times its KV heads to
  // logical[layer]; both [num_layers]. No allocation (per-step metrics).
  void AddLayerStats(SeqId seq, std::span<int64_t> retained, std::span<int64_t> logical) const;
  KvPoolStats PoolStats() const;

 private:
  struct HeadTable {
    std::vector<int32_t> blocks;
    int length = 0;
  };
  struct SeqState {
    bool live = false;
    int num_tokens = 0;
    std::vector<HeadTable> heads;  // [num_heads()]
  };

  StatusOr<int32_t> AllocateBlock();
  void Release(int32_t block);
  void ReturnBlocksPast(HeadTable& h);
  StatusOr<SeqId> NewId();

  KvBlockManagerConfig config_;
  std::vector<SeqState> seqs_;  // indexed by SeqId
  std::vector<SeqId> free_ids_;
  std::vector<int32_t> free_blocks_;  // returned block ids, reused last-returned first
  int32_t next_unused_ = 0;           // blocks [next_unused_, num_blocks) never handed out
  std::vector<int32_t> refs_;         // [num_blocks] holders of each block
  int shared_blocks_ = 0;             // blocks with refs_ > 1
  std::vector<TableWrite> table_writes_;
};

}  // namespace dms
