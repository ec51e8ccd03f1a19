#include "engine/tokenizer/word_cache.h"

namespace dms {

WordCache::WordCache(size_t capacity)
    : capacity_(capacity), per_shard_((capacity + kShards - 1) / kShards) {}

bool WordCache::Lookup(std::string_view word, std::vector<int32_t>* out) const {
  if (capacity_ == 0 || word.size() > kMaxWordBytes) return false;
  size_t h = Hash{}(word);
  const Shard& shard = shards_[ShardOf(h)];
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.map.find(word);
  if (it == shard.map.end()) return false;
  out->insert(out->end(), it->second.begin(), it->second.end());
  return true;
}

void WordCache::Insert(std::string_view word, const int32_t* ids, size_t n) {
  if (capacity_ == 0 || word.size() > kMaxWordBytes) return;
  size_t h = Hash{}(word);
  Shard& shard = shards_[ShardOf(h)];
  std::lock_guard<std::mutex> lock(shard.mu);
  if (shard.map.size() >= per_shard_) shard.map.clear();
  shard.map.try_emplace(std::string(word), ids, ids + n);
}

void WordCache::Clear() {
  for (Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    shard.map.clear();
  }
}

}  // namespace dms
