// Open-addressing hash map from a token pair (left id, right id) to its BPE
// merge (rank, merged id). Built once at load, then read-only and
// thread-safe. Faster than std::unordered_map for the BPE inner loop: one
// multiply, no pointer chasing, 16-byte slots.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dms {

struct Merge {
  int32_t rank;    // position in the merges list: lower merges first
  int32_t new_id;  // id of the merged token
};

class PairMap {
 public:
  // Sized for `expected` entries at load factor <= 0.5.
  explicit PairMap(size_t expected = 0);

  // Inserts, or overwrites an existing entry: with duplicate merges the
  // last one wins, as in Hugging Face (its merge map is collected from the
  // list in order). Returns false when the pair was already present.
  bool Insert(int32_t left, int32_t right, Merge merge);

  // The merge for (left, right), or nullptr.
  const Merge* Find(int32_t left, int32_t right) const {
    uint64_t key = Key(left, right);
    for (size_t i = Slot(key);; i = (i + 1) & mask_) {
      const Entry& e = slots_[i];
      if (e.key == key) return &e.merge;
      if (e.key == kEmpty) return nullptr;
    }
  }

  size_t size() const { return size_; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Entry {
    uint64_t key = kEmpty;
    Merge merge{0, 0};
  };
  static uint64_t Key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
  }
  size_t Slot(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift_; }
  void Grow();

  std::vector<Entry> slots_;
  size_t mask_ = 0;
  int shift_ = 64;
  size_t size_ = 0;
};

}  // namespace dms
