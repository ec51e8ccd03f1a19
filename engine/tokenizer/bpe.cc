#include "engine/tokenizer/bpe.h"

#include <algorithm>
#include <functional>
#include <limits>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/utf8.h"

namespace dms {
namespace {

constexpr int32_t kNoMerge = std::numeric_limits<int32_t>::max();

}  // namespace

StatusOr<std::unique_ptr<BpeModel>> BpeModel::Create(
    Vocab vocab,
    const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges,
    size_t cache_capacity) {
  std::unique_ptr<BpeModel> model(new BpeModel(merges.size(), cache_capacity));
  model->ignore_merges_ = ignore_merges;
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab) {
    if (id < 0) return InvalidArgumentError("model.vocab: negative id for token '" + token + "'");
    if (id > kMaxTokenId) {
      return InvalidArgumentError("model.vocab: id " + std::to_string(id) + " of token '" + token +
                                  "' is above " + std::to_string(kMaxTokenId));
    }
    max_id = std::max(max_id, id);
  }
  model->id_to_token_.assign(static_cast<size_t>(max_id + 1), std::string());
  for (const auto& [token, id] : vocab) model->id_to_token_[id] = token;
  model->token_to_id_ = std::move(vocab);

  const ByteLevelMap& bytes = ByteLevelMap::Get();
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    utf8::Append(bytes.CharFor(static_cast<uint8_t>(b)), &ch);
    int32_t id = model->TokenToId(ch);
    if (id < 0) {
      return InvalidArgumentError("model.vocab: no token for byte " + std::to_string(b) + " ('" +
                                  ch + "'); not a byte-level BPE vocab");
    }
    model->byte_ids_[b] = id;
  }
  std::string joined;  // left + right, one buffer for every merge
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    int32_t l = model->TokenToId(left), r = model->TokenToId(right);
    joined.assign(left).append(right);
    int32_t merged = model->TokenToId(joined);
    if (l < 0 || r < 0 || merged < 0) {
      const std::string& missing = l < 0 ? left : r < 0 ? right : joined;
      return InvalidArgumentError("model.merges[" + std::to_string(rank) + "]: token '" + missing +
                                  "' is not in the vocab");
    }
    if (std::max({l, r, merged}) > PairMap::kMaxId || rank > PairMap::kMaxRank) {
      return InvalidArgumentError("model.merges: more than " + std::to_string(PairMap::kMaxRank) +
                                  " merges or ids above " + std::to_string(PairMap::kMaxId) +
                                  " are not supported");
    }
    model->merges_.Insert(l, r, Merge{static_cast<int32_t>(rank), merged});
  }
  return model;
}

int32_t BpeModel::TokenToId(std::string_view token) const {
  auto it = token_to_id_.find(token);
  return it == token_to_id_.end() ? -1 : it->second;
}

const std::string& BpeModel::IdToToken(int32_t id) const {
  static const std::string kEmpty;
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return kEmpty;
  return id_to_token_[id];
}

void BpeModel::EncodeWord(std::string_view bytes, Scratch* scratch,
                          std::vector<int32_t>* out) const {
  if (bytes.size() == 1) {  // single bytes never merge
    out->push_back(byte_ids_[static_cast<uint8_t>(bytes[0])]);
    return;
  }
  if (cache_.Lookup(bytes, out)) return;
  if (ignore_merges_) {
    // The whole word as one vocab token, when it is one.
    int32_t id = TokenToId(ByteLevelMap::Get().Encode(bytes));
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  std::vector<int32_t>& ids = scratch->ids;
  ids.clear();
  for (char c : bytes) ids.push_back(byte_ids_[static_cast<uint8_t>(c)]);
  if (ids.size() <= kSmallWord) {
    MergeSmall(&ids, &scratch->ranks);
  } else {
    MergeLarge(&ids, scratch);
  }
  cache_.Insert(bytes, ids.data(), ids.size());
  out->insert(out->end(), ids.begin(), ids.end());
}

// O(n^2) in symbols but with tiny constants: ranks[i] holds the merge rank
// of (ids[i], ids[i+1]) so each step scans ints and does two lookups.
void BpeModel::MergeSmall(std::vector<int32_t>* ids_vec, std::vector<int32_t>* ranks_vec) const {
  std::vector<int32_t>& ids = *ids_vec;
  std::vector<int32_t>& ranks = *ranks_vec;
  size_t n = ids.size();
  if (n < 2) return;
  ranks.resize(n);
  auto rank_of = [&](size_t i) {
    int32_t r = merges_.FindRank(ids[i], ids[i + 1]);
    return r < 0 ? kNoMerge : r;
  };
  for (size_t i = 0; i + 1 < n; ++i) ranks[i] = rank_of(i);
  while (n > 1) {
    size_t best = 0;
    int32_t best_rank = kNoMerge;
    for (size_t i = 0; i + 1 < n; ++i) {
      if (ranks[i] < best_rank) {
        best_rank = ranks[i];
        best = i;
      }
    }
    if (best_rank == kNoMerge) break;
    ids[best] = merges_.NewId(best_rank);
    for (size_t i = best + 1; i + 1 < n; ++i) {
      ids[i] = ids[i + 1];
      ranks[i] = ranks[i + 1];
    }
    --n;
    if (best + 1 < n) ranks[best] = rank_of(best);
    if (best > 0) ranks[best - 1] = rank_of(best - 1);
  }
  ids.resize(n);
}

// Hugging Face's algorithm: a linked list of symbols and a min-heap of
// candidate merges keyed by (rank, position); stale entries are skipped.
// An entry is (rank << 32 | pos), so the heap compares plain integers; it is
// current while the pair at pos still has that rank (a rank names one pair,
// and symbols only grow, so a pair never comes back).
void BpeModel::MergeLarge(std::vector<int32_t>* ids_vec, Scratch* scratch) const {
  std::vector<int32_t>& ids = *ids_vec;
  auto& sym = scratch->symbols;
  auto& heap = scratch->heap;
  const int32_t n = static_cast<int32_t>(ids.size());
  sym.resize(n);
  heap.clear();
  for (int32_t i = 0; i < n; ++i) sym[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1, -1};
  auto entry = [](int32_t rank, int32_t pos) {
    return (static_cast<uint64_t>(rank) << 32) | static_cast<uint32_t>(pos);
  };
  auto update = [&](int32_t pos) {  // recomputes the pair at pos; true if it merges
    Scratch::Symbol& s = sym[pos];
    s.rank = s.next < 0 ? -1 : merges_.FindRank(s.id, sym[s.next].id);
    return s.rank >= 0;
  };
  for (int32_t i = 0; i + 1 < n; ++i) {
    if (update(i)) heap.push_back(entry(sym[i].rank, i));
  }
  std::make_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
    uint64_t top = heap.back();
    heap.pop_back();
    int32_t rank = static_cast<int32_t>(top >> 32), pos = static_cast<int32_t>(top & 0xFFFFFFFFu);
    Scratch::Symbol& left = sym[pos];
    if (left.rank != rank) continue;  // stale
    int32_t right = left.next;
    left.id = merges_.NewId(rank);
    left.next = sym[right].next;
    sym[right].rank = -1;
    if (left.next >= 0) sym[left.next].prev = pos;
    if (left.prev >= 0 && update(left.prev)) {
      heap.push_back(entry(sym[left.prev].rank, left.prev));
      std::push_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
    }
    if (update(pos)) {
      heap.push_back(entry(left.rank, pos));
      std::push_heap(heap.begin(), heap.end(), std::greater<uint64_t>());
    }
  }
  ids.clear();
  for (int32_t i = 0; i >= 0 && i < n; i = sym[i].next) ids.push_back(sym[i].id);
}

}  // namespace dms
