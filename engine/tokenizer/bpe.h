// Byte-level BPE model: vocab, merge ranks and the merge loop.
//
// A pre-token's bytes start as one symbol per byte (the vocab id of the
// byte's byte-level character); then, as in Hugging Face tokenizers, the
// adjacent pair with the lowest merge rank is merged, the leftmost first on
// ties, until no adjacent pair has a merge. Works on ids only: no strings
// are built while encoding.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "engine/tokenizer/pair_map.h"
#include "engine/tokenizer/word_cache.h"
#include "common/status.h"

namespace dms {

// Token ids index tables (id -> token, id -> bytes): an id above this is
// refused rather than sized for (the largest vocabularies in use are ~262K).
inline constexpr int32_t kMaxTokenId = (1 << 24) - 1;

class BpeModel {
 public:
  // Token string -> id, looked up by std::string_view without building a
  // std::string (loading Qwen3's 151K merges does three lookups each).
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>()(s); }
  };
  using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

  // Reusable buffers of one encoding thread (no allocation per pre-token).
  struct Scratch {
    std::vector<int32_t> ids;
    std::vector<int32_t> ranks;
    struct Symbol {
      int32_t id, prev, next;
      int32_t rank;  // merge rank of (this, next), -1: none
    };
    std::vector<Symbol> symbols;
    std::vector<uint64_t> heap;  // rank << 32 | position
  };

  // vocab: token string (byte-level characters) -> id; merges: pairs of
  // token strings in rank order. Errors: INVALID_ARGUMENT naming the merge
  // or byte whose token is missing from the vocab.
  static StatusOr<std::unique_ptr<BpeModel>> Create(
      Vocab vocab,
      const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges,
      size_t cache_capacity);

  // Appends the ids of one pre-token (raw bytes, non-empty) to *out.
  // Thread-safe with a Scratch per thread.
  void EncodeWord(std::string_view bytes, Scratch* scratch, std::vector<int32_t>* out) const;

  // The merge loop alone (no cache, no ignore_merges): symbol ids in, final
  // ids out, in place. Exposed so tests can check both algorithms agree.
  void MergeSmall(std::vector<int32_t>* ids, std::vector<int32_t>* ranks) const;
  void MergeLarge(std::vector<int32_t>* ids, Scratch* scratch) const;

  int32_t ByteId(uint8_t b) const { return byte_ids_[b]; }
  // Vocab lookups (added tokens are the Tokenizer's): -1 / "" when absent.
  int32_t TokenToId(std::string_view token) const;
  const std::string& IdToToken(int32_t id) const;  // "" when out of range
  size_t vocab_size() const { return id_to_token_.size(); }
  size_t num_merges() const { return merges_.size(); }
  WordCache& cache() const { return cache_; }

  // Words with more symbols than this use the heap-based merge loop.
  static constexpr size_t kSmallWord = 48;

 private:
  BpeModel(size_t num_merges, size_t cache_capacity)
      : merges_(num_merges), cache_(cache_capacity) {}

  Vocab token_to_id_;
  std::vector<std::string> id_to_token_;
  std::array<int32_t, 256> byte_ids_{};
  PairMap merges_;
  bool ignore_merges_ = false;
  mutable WordCache cache_;
};

}  // namespace dms
