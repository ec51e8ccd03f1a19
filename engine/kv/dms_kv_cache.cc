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

namespace {

KvBlockManagerConfig ManagerConfig(const KvCacheConfig& c, bool storage_ok) {
  KvBlockManagerConfig m;
  m.num_layers = c.num_layers;
  m.num_kv_heads = c.num_kv_heads;
  m.block_size = c.block_size;
  m.num_blocks = storage_ok ? c.num_blocks : 0;  // no storage: nothing to hand out
  return m;
}

}  // namespace

DmsKvCache::DmsKvCache(const KvCacheConfig& config)
    : config_(config),
      storage_(config.num_blocks, config.block_size, config.head_dim),
      blocks_(ManagerConfig(config, storage_.ok())) {}

DmsKvCache::~DmsKvCache() = default;

SeqId DmsKvCache::AddSequence() {
  const SeqId id = *blocks_.AddSequence();  // unbounded ids: cannot fail
  if (id >= static_cast<SeqId>(rings_.size())) rings_.resize(id + 1);
  // Rings grow with the tokens appended (Append), so W costs nothing up front.
  rings_[id].assign(static_cast<size_t>(config_.num_layers) * config_.num_kv_heads, Ring());
  return id;
}

void DmsKvCache::FreeSequence(SeqId seq) {
  if (!HasSequence(seq)) return;
  blocks_.FreeSequence(seq);
  rings_[seq] = {};
}

Status DmsKvCache::Reserve(SeqId seq, int num_new_tokens) {
  blocks_.ClearTableWrites();
  DMS_RETURN_IF_ERROR(blocks_.Reserve(seq, num_new_tokens));
  for (const KvBlockManager::TableWrite& w : blocks_.table_writes()) storage_.ResetPositions(w.block);
  blocks_.ClearTableWrites();
  return OkStatus();
}

Status DmsKvCache::Append(SeqId seq, int layer, int head, const float* k, const float* v,
                          bool decision) {
  Ring& h = RingOf(seq, layer, head);
  const int hi = HeadIndex(layer, head);
  int length = blocks_.Length(seq, hi);
  const int t = h.num_tokens;  // position of the new token
  int slot;
  if (config_.window == kDenseWindow) {
    slot = length++;
  } else {
    const int ring = config_.window + 1;
    // The new token's decision marks its predecessor (spec section 3).
    if (t > 0) h.evict[(t - 1) % ring] = decision ? 1 : 0;
    const int idx = t % ring;
    if (t >= ring && h.evict[idx]) {
      slot = h.slot[idx];  // token t-W-1 leaves the window evicted: reuse its slot
    } else {
      slot = length++;     // it is kept (or the window is not full yet)
    }
    if (t < ring) {  // the ring grows to W+1 entries as the first tokens arrive
      h.slot.push_back(slot);
      h.evict.push_back(0);
    } else {
      h.slot[idx] = slot;
      h.evict[idx] = 0;  // unknown until the successor arrives
    }
  }
  const int bs = config_.block_size;
  const std::vector<int32_t>& table = blocks_.PageTable(seq, hi);
  if (slot / bs >= static_cast<int>(table.size())) {
    return InternalError("KV cache: append without Reserve (layer " + std::to_string(layer) +
                         ", head " + std::to_string(head) + ")");
  }
  const int32_t block = table[slot / bs];
  const int off = slot % bs;
  std::memcpy(storage_.k(block, off), k, sizeof(float) * config_.head_dim);
  std::memcpy(storage_.v(block, off), v, sizeof(float) * config_.head_dim);
  storage_.pos(block, off) = t;
  blocks_.SetLength(seq, hi, length);
  h.num_tokens = t + 1;
  return OkStatus();
}

HeadCacheView DmsKvCache::View(SeqId seq, int layer, int head) const {
  const int hi = HeadIndex(layer, head);
  const Ring& h = rings_[seq][hi];
  HeadCacheView view;
  view.pool_ = &storage_;
  view.blocks_ = &blocks_.PageTable(seq, hi);
  view.ring_evict_ = &h.evict;
  view.block_size_ = config_.block_size;
  view.window_ = config_.window;
  view.length_ = blocks_.Length(seq, hi);
  view.num_tokens_ = h.num_tokens;
  return view;
}

Status DmsKvCache::Compact(SeqId seq, int layer, int head, std::span<const int32_t> kept_slots) {
  DMS_RETURN_IF_ERROR(blocks_.CheckCompaction(seq, layer, head, config_.window != kDenseWindow,
                                              kept_slots));
  const int hi = HeadIndex(layer, head);
  const int bs = config_.block_size;
  std::vector<KvBlockManager::BlockCopy> copies;  // shared blocks become private first
  DMS_RETURN_IF_ERROR(blocks_.MakeWritable(seq, hi, 0, &copies));
  for (const KvBlockManager::BlockCopy& c : copies) storage_.CopyBlock(c.from, c.to);
  blocks_.ClearTableWrites();
  const std::vector<int32_t>& table = blocks_.PageTable(seq, hi);
  // kept_slots[i] >= i, so moving forward never overwrites a slot still to be read.
  for (size_t i = 0; i < kept_slots.size(); ++i) {
    const int from = kept_slots[i], to = static_cast<int>(i);
    if (from == to) continue;
    const int32_t fb = table[from / bs], tb = table[to / bs];
    std::memcpy(storage_.k(tb, to % bs), storage_.k(fb, from % bs),
                sizeof(float) * config_.head_dim);
    std::memcpy(storage_.v(tb, to % bs), storage_.v(fb, from % bs),
                sizeof(float) * config_.head_dim);
    storage_.pos(tb, to % bs) = storage_.pos(fb, from % bs);
  }
  blocks_.Truncate(seq, hi, static_cast<int>(kept_slots.size()));
  return OkStatus();
}

}  // namespace dms
