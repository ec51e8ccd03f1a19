// Open-addressing hash map from a token pair (left id, right id) to its BPE
// merge (rank, merged id). Built once at load, then read-only and
// thread-safe. The BPE inner loop is bound by the latency of these lookups,
// so a slot is one 64-bit word (left:20 | right:20 | rank:24 bits) and the
// table (2 MiB for Qwen3's 151K merges) stays in the core's L2 cache; the
// merged id is looked up by rank only when a merge is actually applied.
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
  static constexpr int32_t kMaxId = (1 << 20) - 2;  // all-ones marks empty
  static constexpr int32_t kMaxRank = (1 << 24) - 2;

  // Sized for `expected` entries at load factor <= 0.75.
  explicit PairMap(size_t expected = 0);

  // Inserts, or overwrites an existing entry: with duplicate merges the
  // last one wins, as in Hugging Face (its merge map is collected from the
  // list in order). Requires 0 <= ids <= kMaxId and 0 <= rank <= kMaxRank.
  // Returns false for a duplicate pair.
  bool Insert(int32_t left, int32_t right, Merge merge);

  // Rank of the merge of (left, right), or -1.
  int32_t FindRank(int32_t left, int32_t right) const {
    uint64_t key = Key(left, right);
    for (size_t i = Slot(key);; i = (i + 1) & mask_) {
      uint64_t e = slots_[i];
      if ((e >> kRankBits) == key) return static_cast<int32_t>(e & kRankMask);
      if (e == kEmpty) return -1;
    }
  }
  // Merged id for a rank returned by FindRank.
  int32_t NewId(int32_t rank) const { return new_ids_[rank]; }

  size_t size() const { return size_; }

 private:
  static constexpr int kRankBits = 24;
  static constexpr uint64_t kRankMask = (uint64_t{1} << kRankBits) - 1;
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // its key part is no valid pair
  static uint64_t Key(int32_t left, int32_t right) {
    return (static_cast<uint64_t>(left) << 20) | static_cast<uint64_t>(right);
  }
  size_t Slot(uint64_t key) const { return (key * 0x9E3779B97F4A7C15ull) >> shift_; }
  void Grow();
  void Place(uint64_t entry);

  std::vector<uint64_t> slots_;
  std::vector<int32_t> new_ids_;  // by rank
  size_t mask_ = 0;
  int shift_ = 64;
  size_t size_ = 0;
};

}  // namespace dms
