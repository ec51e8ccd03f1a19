#include "engine/tokenizer/pair_map.h"

#include <utility>

namespace dms {
namespace {

size_t Pow2AtLeast(size_t n) {
  size_t p = 16;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace

PairMap::PairMap(size_t expected) {
  size_t cap = Pow2AtLeast(expected + expected / 2);
  slots_.assign(cap, kEmpty);
  mask_ = cap - 1;
  shift_ = 64 - __builtin_ctzll(cap);
}

bool PairMap::Insert(int32_t left, int32_t right, Merge merge) {
  if (static_cast<size_t>(merge.rank) >= new_ids_.size()) new_ids_.resize(merge.rank + 1, -1);
  new_ids_[merge.rank] = merge.new_id;
  uint64_t key = Key(left, right);
  uint64_t entry = (key << kRankBits) | static_cast<uint64_t>(merge.rank);
  for (size_t i = Slot(key);; i = (i + 1) & mask_) {
    uint64_t& e = slots_[i];
    if ((e >> kRankBits) == key) {
      e = entry;
      return false;
    }
    if (e == kEmpty) break;
  }
  if ((size_ + 1) * 4 > slots_.size() * 3) Grow();
  Place(entry);
  ++size_;
  return true;
}

void PairMap::Place(uint64_t entry) {
  for (size_t i = Slot(entry >> kRankBits);; i = (i + 1) & mask_) {
    if (slots_[i] == kEmpty) {
      slots_[i] = entry;
      return;
    }
  }
}

void PairMap::Grow() {
  std::vector<uint64_t> old = std::move(slots_);
  size_t cap = old.size() * 2;
  slots_.assign(cap, kEmpty);
  mask_ = cap - 1;
  shift_ = 64 - __builtin_ctzll(cap);
  for (uint64_t e : old) {
    if (e != kEmpty) Place(e);
  }
}

}  // namespace dms
