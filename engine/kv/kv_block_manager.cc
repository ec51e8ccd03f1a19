#include "engine/kv/kv_block_manager.h"

#include <algorithm>
#include <string>

namespace dms {
namespace {

const std::vector<int32_t> kNoBlocks;

int BlocksFor(int slots, int block_size) { return (slots + block_size - 1) / block_size; }

}  // namespace

KvBlockManager::KvBlockManager(const KvBlockManagerConfig& config)
    : config_(config), refs_(std::max(config.num_blocks, 0), 0) {}

StatusOr<SeqId> KvBlockManager::NewId() {
  if (!free_ids_.empty()) {
    const SeqId id = free_ids_.back();
    free_ids_.pop_back();
    return id;
  }
  if (config_.max_sequences > 0 && static_cast<int>(seqs_.size()) >= config_.max_sequences) {
    return ResourceExhaustedError("KV cache: all " + std::to_string(config_.max_sequences) +
                                  " sequence slots are in use (raise max_sequences)");
  }
  seqs_.emplace_back();
  return static_cast<SeqId>(seqs_.size() - 1);
}

StatusOr<SeqId> KvBlockManager::AddSequence() {
  DMS_ASSIGN_OR_RETURN(const SeqId id, NewId());
  SeqState& s = seqs_[id];
  s.live = true;
  s.num_tokens = 0;
  s.heads.assign(num_heads(), HeadTable());
  return id;
}

StatusOr<SeqId> KvBlockManager::Fork(SeqId src) {
  if (!HasSequence(src)) return InvalidArgumentError("unknown sequence id " + std::to_string(src));
  DMS_ASSIGN_OR_RETURN(const SeqId id, NewId());
  seqs_[id] = seqs_[src];  // after NewId: seqs_ may have grown
  for (const HeadTable& h : seqs_[id].heads) {
    for (int32_t b : h.blocks) {
      if (refs_[b]++ == 1) ++shared_blocks_;
    }
  }
  return id;
}

bool KvBlockManager::HasSequence(SeqId seq) const {
  return seq >= 0 && seq < static_cast<SeqId>(seqs_.size()) && seqs_[seq].live;
}

void KvBlockManager::FreeSequence(SeqId seq) {
  if (!HasSequence(seq)) return;
  for (HeadTable& h : seqs_[seq].heads) {
    for (int32_t b : h.blocks) Release(b);
  }
  seqs_[seq] = SeqState();
  free_ids_.push_back(seq);
}

StatusOr<int32_t> KvBlockManager::AllocateBlock() {
  int32_t b;
  if (!free_blocks_.empty()) {
    b = free_blocks_.back();
    free_blocks_.pop_back();
  } else if (next_unused_ < config_.num_blocks) {
    b = next_unused_++;
  } else {
    return ResourceExhaustedError("KV block pool exhausted: all " +
                                  std::to_string(config_.num_blocks) + " blocks of " +
                                  std::to_string(config_.block_size) + " tokens are in use");
  }
  refs_[b] = 1;
  return b;
}

void KvBlockManager::Release(int32_t block) {
  if (block < 0 || block >= config_.num_blocks || refs_[block] <= 0) return;
  if (--refs_[block] == 1) --shared_blocks_;
  if (refs_[block] == 0) free_blocks_.push_back(block);
}

int KvBlockManager::num_free_blocks() const {
  return static_cast<int>(free_blocks_.size()) + (config_.num_blocks - next_unused_);
}

int KvBlockManager::RefCount(int32_t block) const {
  return block >= 0 && block < config_.num_blocks ? refs_[block] : 0;
}

int KvBlockManager::BlocksNeeded(SeqId seq, int num_new_tokens) const {
  if (!HasSequence(seq)) return 0;
  int needed = 0;
  for (const HeadTable& h : seqs_[seq].heads) {
    const int want = BlocksFor(h.length + num_new_tokens, config_.block_size);
    needed += std::max(0, want - static_cast<int>(h.blocks.size()));
  }
  return needed;
}

Status KvBlockManager::Reserve(SeqId seq, int num_new_tokens) {
  if (!HasSequence(seq)) return InvalidArgumentError("unknown sequence id " + std::to_string(seq));
  const int needed = BlocksNeeded(seq, num_new_tokens);
  if (needed > num_free_blocks()) {
    return ResourceExhaustedError("KV cache: " + std::to_string(num_new_tokens) +
                                  " new tokens need " + std::to_string(needed) +
                                  " more blocks but only " + std::to_string(num_free_blocks()) +
                                  " of " + std::to_string(config_.num_blocks) + " are free");
  }
  std::vector<HeadTable>& heads = seqs_[seq].heads;
  if (config_.max_blocks_per_head > 0) {
    for (const HeadTable& h : heads) {
      const int want = BlocksFor(h.length + num_new_tokens, config_.block_size);
      if (want > config_.max_blocks_per_head) {
        return ResourceExhaustedError("KV cache: a head of sequence " + std::to_string(seq) +
                                      " would need " + std::to_string(want) +
                                      " blocks, more than its page table holds (" +
                                      std::to_string(config_.max_blocks_per_head) + ")");
      }
    }
  }
  for (size_t i = 0; i < heads.size(); ++i) {
    HeadTable& h = heads[i];
    const int want = BlocksFor(h.length + num_new_tokens, config_.block_size);
    while (static_cast<int>(h.blocks.size()) < want) {
      StatusOr<int32_t> b = AllocateBlock();
      if (!b.ok()) return b.status();  // cannot happen: counted above
      table_writes_.push_back(
          {seq, static_cast<int>(i), static_cast<int>(h.blocks.size()), *b});
      h.blocks.push_back(*b);
    }
  }
  return OkStatus();
}

Status KvBlockManager::MakeWritable(SeqId seq, int head, int first_slot,
                                    std::vector<BlockCopy>* copies) {
  if (!HasSequence(seq)) return InvalidArgumentError("unknown sequence id " + std::to_string(seq));
  HeadTable& h = seqs_[seq].heads[head];
  for (size_t i = std::max(first_slot, 0) / config_.block_size; i < h.blocks.size(); ++i) {
    const int32_t from = h.blocks[i];
    if (refs_[from] <= 1) continue;
    DMS_ASSIGN_OR_RETURN(const int32_t to, AllocateBlock());
    Release(from);
    h.blocks[i] = to;
    table_writes_.push_back({seq, head, static_cast<int>(i), to});
    copies->push_back({from, to});
  }
  return OkStatus();
}

void KvBlockManager::SetLength(SeqId seq, int head, int length) {
  seqs_[seq].heads[head].length = length;
}

void KvBlockManager::ReturnBlocksPast(HeadTable& h) {
  const size_t keep = BlocksFor(h.length, config_.block_size);
  while (h.blocks.size() > keep) {
    Release(h.blocks.back());
    h.blocks.pop_back();
  }
}

void KvBlockManager::CommitStep(SeqId seq, int num_new_tokens, std::span<const int32_t> lengths) {
  if (!HasSequence(seq)) return;
  SeqState& s = seqs_[seq];
  s.num_tokens += num_new_tokens;
  for (size_t i = 0; i < s.heads.size(); ++i) {
    if (!lengths.empty()) s.heads[i].length = lengths[i];
    ReturnBlocksPast(s.heads[i]);
  }
}

Status KvBlockManager::CheckCompaction(SeqId seq, int layer, int kv_head, bool evicting,
                                       std::span<const int32_t> kept) const {
  if (!HasSequence(seq)) return InvalidArgumentError("unknown sequence id " + std::to_string(seq));
  if (layer < 0 || layer >= config_.num_layers || kv_head < 0 ||
      kv_head >= config_.num_kv_heads) {
    return InvalidArgumentError("KV compaction: no layer " + std::to_string(layer) + " head " +
                                std::to_string(kv_head));
  }
  if (evicting) {
    return FailedPreconditionError(
        "KV compaction needs a dense cache; this one evicts by DMS decisions");
  }
  const int length = Length(seq, layer * config_.num_kv_heads + kv_head);
  for (size_t i = 0; i < kept.size(); ++i) {
    const int32_t s = kept[i];
    if (s < 0 || s >= length || (i > 0 && s <= kept[i - 1])) {
      return InvalidArgumentError("KV compaction of layer " + std::to_string(layer) + " head " +
                                  std::to_string(kv_head) + ": kept slots must ascend within [0, " +
                                  std::to_string(length) + "), got " + std::to_string(s) +
                                  " at index " + std::to_string(i));
    }
  }
  return OkStatus();
}

void KvBlockManager::Truncate(SeqId seq, int head, int length) {
  if (!HasSequence(seq)) return;
  HeadTable& h = seqs_[seq].heads[head];
  h.length = length;
  ReturnBlocksPast(h);
}

const std::vector<int32_t>& KvBlockManager::PageTable(SeqId seq, int head) const {
  return HasSequence(seq) ? seqs_[seq].heads[head].blocks : kNoBlocks;
}

int KvBlockManager::Length(SeqId seq, int head) const {
  return HasSequence(seq) ? seqs_[seq].heads[head].length : 0;
}

int KvBlockManager::MaxLength(SeqId seq) const {
  int m = 0;
  if (HasSequence(seq)) {
    for (const HeadTable& h : seqs_[seq].heads) m = std::max(m, h.length);
  }
  return m;
}

int KvBlockManager::LogicalTokens(SeqId seq) const {
  return HasSequence(seq) ? seqs_[seq].num_tokens : 0;
}

int KvBlockManager::NumBlocks(SeqId seq) const {
  int n = 0;
  if (HasSequence(seq)) {
    for (const HeadTable& h : seqs_[seq].heads) n += static_cast<int>(h.blocks.size());
  }
  return n;
}

SequenceKvStats KvBlockManager::SequenceStats(SeqId seq) const {
  SequenceKvStats stats;
  if (!HasSequence(seq)) return stats;
  const SeqState& s = seqs_[seq];
  stats.logical_tokens = s.num_tokens;
  stats.retained.assign(config_.num_layers, std::vector<int>(config_.num_kv_heads, 0));
  double ratio_sum = 0;
  int n = 0;
  for (int l = 0; l < config_.num_layers; ++l) {
    for (int kh = 0; kh < config_.num_kv_heads; ++kh) {
      const HeadTable& h = s.heads[static_cast<size_t>(l) * config_.num_kv_heads + kh];
      stats.retained[l][kh] = h.length;
      stats.blocks += static_cast<int>(h.blocks.size());
      ratio_sum += h.length > 0 ? static_cast<double>(s.num_tokens) / h.length : 1.0;
      ++n;
    }
  }
  stats.compression_ratio = n > 0 ? ratio_sum / n : 1.0;
  return stats;
}

void KvBlockManager::AddLayerStats(SeqId seq, std::span<int64_t> retained,
                                   std::span<int64_t> logical) const {
  if (!HasSequence(seq)) return;
  const SeqState& s = seqs_[seq];
  const int layers = std::min<int>(config_.num_layers, static_cast<int>(retained.size()));
  for (int l = 0; l < layers; ++l) {
    for (int kh = 0; kh < config_.num_kv_heads; ++kh) {
      retained[l] += s.heads[static_cast<size_t>(l) * config_.num_kv_heads + kh].length;
    }
    if (l < static_cast<int>(logical.size())) {
      logical[l] += static_cast<int64_t>(s.num_tokens) * config_.num_kv_heads;
    }
  }
}

KvPoolStats KvBlockManager::PoolStats() const {
  KvPoolStats stats;
  stats.num_blocks = config_.num_blocks;
  stats.blocks_free = num_free_blocks();
  stats.blocks_used = config_.num_blocks - stats.blocks_free;
  stats.block_size = config_.block_size;
  stats.shared_blocks = shared_blocks_;
  for (const SeqState& s : seqs_) {
    if (!s.live) continue;
    ++stats.num_sequences;
    stats.logical_tokens += s.num_tokens;
    for (const HeadTable& h : s.heads) stats.retained_tokens += h.length;
  }
  return stats;
}

}  // namespace dms
