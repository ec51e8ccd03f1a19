#include "engine/kv/dms_kv_cache.h"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <string>

namespace dms {

bool HeadCacheView::EvictMarked(int32_t position) const {
  if (window_ == kDenseWindow) return false;
  const int ring = window_ + 1;
  // Only positions still inside the window can carry a mark; older cached
  // entries survived because their mark was 0.
  if (position < num_tokens_ - ring) return false;
  return (*ring_evict_)[position % ring] != 0;
}

DmsKvCache::DmsKvCache(const KvCacheConfig& config)
    : config_(config), pool_(config.num_blocks, config.block_size, config.head_dim) {}

DmsKvCache::~DmsKvCache() = default;

SeqId DmsKvCache::AddSequence() {
  auto state = std::make_unique<SeqState>();
  state->heads.resize(static_cast<size_t>(config_.num_layers) * config_.num_kv_heads);
  // Rings grow with the tokens appended (Append), so W costs nothing up front.
  SeqId id;
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
    seqs_[id] = std::move(state);
  } else {
    id = static_cast<SeqId>(seqs_.size());
    seqs_.push_back(std::move(state));
  }
  return id;
}

bool DmsKvCache::HasSequence(SeqId seq) const {
  return seq >= 0 && seq < static_cast<SeqId>(seqs_.size()) && seqs_[seq] != nullptr;
}

void DmsKvCache::FreeSequence(SeqId seq) {
  if (!HasSequence(seq)) return;
  for (HeadState& h : seqs_[seq]->heads) {
    for (int32_t b : h.blocks) pool_.Free(b);
  }
  seqs_[seq].reset();
  free_ids_.push_back(seq);
}

DmsKvCache::HeadState& DmsKvCache::Head(SeqId seq, int layer, int head) {
  return seqs_[seq]->heads[static_cast<size_t>(layer) * config_.num_kv_heads + head];
}

const DmsKvCache::HeadState& DmsKvCache::Head(SeqId seq, int layer, int head) const {
  return seqs_[seq]->heads[static_cast<size_t>(layer) * config_.num_kv_heads + head];
}

int DmsKvCache::BlocksNeeded(SeqId seq, int num_new_tokens) const {
  if (!HasSequence(seq)) return 0;
  const int bs = config_.block_size;
  int needed = 0;
  for (const HeadState& h : seqs_[seq]->heads) {
    int want = (h.length + num_new_tokens + bs - 1) / bs;
    needed += std::max(0, want - static_cast<int>(h.blocks.size()));
  }
  return needed;
}

Status DmsKvCache::Reserve(SeqId seq, int num_new_tokens) {
  if (!HasSequence(seq)) return InvalidArgumentError("unknown sequence id " + std::to_string(seq));
  const int needed = BlocksNeeded(seq, num_new_tokens);
  if (needed > pool_.num_free()) {
    return ResourceExhaustedError("KV cache: " + std::to_string(num_new_tokens) +
                                  " new tokens need " + std::to_string(needed) +
                                  " more blocks but only " + std::to_string(pool_.num_free()) +
                                  " of " + std::to_string(pool_.num_blocks()) + " are free");
  }
  const int bs = config_.block_size;
  for (HeadState& h : seqs_[seq]->heads) {
    int want = (h.length + num_new_tokens + bs - 1) / bs;
    while (static_cast<int>(h.blocks.size()) < want) {
      StatusOr<int32_t> b = pool_.Allocate();
      if (!b.ok()) return b.status();  // cannot happen: checked above
      h.blocks.push_back(*b);
    }
  }
  return OkStatus();
}

void DmsKvCache::Trim(SeqId seq) {
  if (!HasSequence(seq)) return;
  const int bs = config_.block_size;
  for (HeadState& h : seqs_[seq]->heads) {
    const size_t keep = (h.length + bs - 1) / bs;
    while (h.blocks.size() > keep) {
      pool_.Free(h.blocks.back());
      h.blocks.pop_back();
    }
  }
}

Status DmsKvCache::Append(SeqId seq, int layer, int head, const float* k, const float* v,
                          bool decision) {
  HeadState& h = Head(seq, layer, head);
  const int t = h.num_tokens;  // position of the new token
  int slot;
  if (config_.window == kDenseWindow) {
    slot = h.length++;
  } else {
    const int ring = config_.window + 1;
    // The new token's decision marks its predecessor (spec section 3).
    if (t > 0) h.ring_evict[(t - 1) % ring] = decision ? 1 : 0;
    const int idx = t % ring;
    if (t >= ring && h.ring_evict[idx]) {
      slot = h.ring_slot[idx];  // token t-W-1 leaves the window evicted: reuse its slot
    } else {
      slot = h.length++;        // it is kept (or the window is not full yet)
    }
    if (t < ring) {  // the ring grows to W+1 entries as the first tokens arrive
      h.ring_slot.push_back(slot);
      h.ring_evict.push_back(0);
    } else {
      h.ring_slot[idx] = slot;
      h.ring_evict[idx] = 0;  // unknown until the successor arrives
    }
  }
  const int bs = config_.block_size;
  if (slot / bs >= static_cast<int>(h.blocks.size())) {
    return InternalError("KV cache: append without Reserve (layer " + std::to_string(layer) +
                         ", head " + std::to_string(head) + ")");
  }
  const int32_t block = h.blocks[slot / bs];
  const int off = slot % bs;
  std::memcpy(pool_.k(block, off), k, sizeof(float) * config_.head_dim);
  std::memcpy(pool_.v(block, off), v, sizeof(float) * config_.head_dim);
  pool_.pos(block, off) = t;
  h.num_tokens = t + 1;
  return OkStatus();
}

HeadCacheView DmsKvCache::View(SeqId seq, int layer, int head) const {
  const HeadState& h = Head(seq, layer, head);
  HeadCacheView view;
  view.pool_ = &pool_;
  view.blocks_ = &h.blocks;
  view.ring_evict_ = &h.ring_evict;
  view.block_size_ = config_.block_size;
  view.window_ = config_.window;
  view.length_ = h.length;
  view.num_tokens_ = h.num_tokens;
  return view;
}

Status DmsKvCache::Compact(SeqId seq, int layer, int head, std::span<const int32_t> kept_slots) {
  if (!HasSequence(seq)) return InvalidArgumentError("unknown sequence id " + std::to_string(seq));
  if (layer < 0 || layer >= config_.num_layers || head < 0 || head >= config_.num_kv_heads) {
    return InvalidArgumentError("KV compaction: no layer " + std::to_string(layer) + " head " +
                                std::to_string(head));
  }
  if (config_.window != kDenseWindow) {
    return FailedPreconditionError("KV compaction needs a dense cache; this one evicts by DMS decisions");
  }
  HeadState& h = Head(seq, layer, head);
  for (size_t i = 0; i < kept_slots.size(); ++i) {
    const int32_t s = kept_slots[i];
    if (s < 0 || s >= h.length || (i > 0 && s <= kept_slots[i - 1])) {
      return InvalidArgumentError("KV compaction of layer " + std::to_string(layer) + " head " +
                                  std::to_string(head) + ": kept slots must ascend within [0, " +
                                  std::to_string(h.length) + "), got " + std::to_string(s) +
                                  " at index " + std::to_string(i));
    }
  }
  const int bs = config_.block_size;
  // kept_slots[i] >= i, so moving forward never overwrites a slot still to be read.
  for (size_t i = 0; i < kept_slots.size(); ++i) {
    const int from = kept_slots[i], to = static_cast<int>(i);
    if (from == to) continue;
    const int32_t fb = h.blocks[from / bs], tb = h.blocks[to / bs];
    std::memcpy(pool_.k(tb, to % bs), pool_.k(fb, from % bs), sizeof(float) * config_.head_dim);
    std::memcpy(pool_.v(tb, to % bs), pool_.v(fb, from % bs), sizeof(float) * config_.head_dim);
    pool_.pos(tb, to % bs) = pool_.pos(fb, from % bs);
  }
  h.length = static_cast<int>(kept_slots.size());
  const size_t keep_blocks = (h.length + bs - 1) / bs;
  while (h.blocks.size() > keep_blocks) {
    pool_.Free(h.blocks.back());
    h.blocks.pop_back();
  }
  return OkStatus();
}

int DmsKvCache::LogicalTokens(SeqId seq) const {
  if (!HasSequence(seq) || seqs_[seq]->heads.empty()) return 0;
  return seqs_[seq]->heads.back().num_tokens;  // the last layer is appended last
}

SequenceKvStats DmsKvCache::SequenceStats(SeqId seq) const {
  SequenceKvStats stats;
  if (!HasSequence(seq)) return stats;
  stats.logical_tokens = LogicalTokens(seq);
  stats.retained.assign(config_.num_layers, std::vector<int>(config_.num_kv_heads, 0));
  double ratio_sum = 0;
  int n = 0;
  for (int l = 0; l < config_.num_layers; ++l) {
    for (int h = 0; h < config_.num_kv_heads; ++h) {
      const HeadState& hs = Head(seq, l, h);
      stats.retained[l][h] = hs.length;
      stats.blocks += static_cast<int>(hs.blocks.size());
      ratio_sum += hs.length > 0 ? static_cast<double>(hs.num_tokens) / hs.length : 1.0;
      ++n;
    }
  }
  stats.compression_ratio = n > 0 ? ratio_sum / n : 1.0;
  return stats;
}

KvPoolStats DmsKvCache::PoolStats() const {
  KvPoolStats stats;
  stats.num_blocks = pool_.num_blocks();
  stats.blocks_free = pool_.num_free();
  stats.blocks_used = pool_.num_used();
  stats.block_size = pool_.block_size();
  for (const auto& s : seqs_) {
    if (!s) continue;
    ++stats.num_sequences;
    if (!s->heads.empty()) stats.logical_tokens += s->heads.back().num_tokens;
    for (const HeadState& h : s->heads) stats.retained_tokens += h.length;
  }
  return stats;
}

}  // namespace dms
