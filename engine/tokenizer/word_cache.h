// Bounded, thread-safe cache of BPE results: pre-token bytes -> token ids.
// Natural text repeats a small set of words, so most pre-tokens skip the
// merge loop. Sharded so concurrent Encode calls rarely contend; a shard
// that reaches its share of the capacity is cleared (simple, bounded).
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dms {

class WordCache {
 public:
  // capacity: total entries across shards; 0 disables the cache.
  explicit WordCache(size_t capacity);

  // Appends the cached ids of `word` to *out and returns true on a hit.
  bool Lookup(std::string_view word, std::vector<int32_t>* out) const;
  void Insert(std::string_view word, const int32_t* ids, size_t n);
  void Clear();
  size_t capacity() const { return capacity_; }

  // Words longer than this are never cached (rare; they would crowd out
  // the common ones).
  static constexpr size_t kMaxWordBytes = 64;

 private:
  struct Hash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Eq {
    using is_transparent = void;
    bool operator()(std::string_view a, std::string_view b) const { return a == b; }
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<std::string, std::vector<int32_t>, Hash, Eq> map;
  };
  static constexpr size_t kShards = 16;
  size_t ShardOf(size_t hash) const { return (hash >> 7) % kShards; }

  size_t capacity_;
  size_t per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace dms
