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
  size_t cap = Pow2AtLeast(expected * 2);
  slots_.assign(cap, Entry{});
  mask_ = cap - 1;
  shift_ = 64 - __builtin_ctzll(cap);
}

bool PairMap::Insert(int32_t left, int32_t right, Merge merge) {
  if ((size_ + 1) * 2 > slots_.size()) Grow();
  uint64_t key = Key(left, right);
  for (size_t i = Slot(key);; i = (i + 1) & mask_) {
    Entry& e = slots_[i];
    if (e.key == key) {
      e.merge = merge;
      return false;
    }
    if (e.key == kEmpty) {
      e.key = key;
      e.merge = merge;
      ++size_;
      return true;
    }
  }
}

void PairMap::Grow() {
  std::vector<Entry> old = std::move(slots_);
  size_t cap = old.size() * 2;
  slots_.assign(cap, Entry{});
  mask_ = cap - 1;
  shift_ = 64 - __builtin_ctzll(cap);
  size_ = 0;
  for (const Entry& e : old) {
    if (e.key != kEmpty) {
      Insert(static_cast<int32_t>(e.key >> 32), static_cast<int32_t>(e.key & 0xFFFFFFFFu), e.merge);
    }
  }
}

}  // namespace dms
