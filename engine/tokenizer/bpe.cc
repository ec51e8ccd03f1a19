#include "engine/tokenizer/bpe.h"

#include <algorithm>
#include <limits>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/utf8.h"

namespace dms {
namespace {

constexpr int32_t kNoMerge = std::numeric_limits<int32_t>::max();

// Min-heap order of Hugging Face's merge queue: lowest rank, then leftmost.
struct HeapGreater {
  bool operator()(const BpeModel::Scratch::HeapEntry& a,
                  const BpeModel::Scratch::HeapEntry& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  }
};

}  // namespace

StatusOr<std::unique_ptr<BpeModel>> BpeModel::Create(
    std::unordered_map<std::string, int32_t> vocab,
    const std::vector<std::pair<std::string, std::string>>& merges, bool ignore_merges,
    size_t cache_capacity) {
  std::unique_ptr<BpeModel> model(new BpeModel(merges.size(), cache_capacity));
  model->ignore_merges_ = ignore_merges;
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab) {
    if (id < 0) return InvalidArgumentError("model.vocab: negative id for token '" + token + "'");
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
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [left, right] = merges[rank];
    int32_t l = model->TokenToId(left), r = model->TokenToId(right);
    int32_t merged = model->TokenToId(left + right);
    if (l < 0 || r < 0 || merged < 0) {
      const std::string& missing = l < 0 ? left : r < 0 ? right : left + right;
      return InvalidArgumentError("model.merges[" + std::to_string(rank) + "]: token '" + missing +
                                  "' is not in the vocab");
    }
    model->merges_.Insert(l, r, Merge{static_cast<int32_t>(rank), merged});
  }
  return model;
}

int32_t BpeModel::TokenToId(std::string_view token) const {
  auto it = token_to_id_.find(std::string(token));
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
    const Merge* m = merges_.Find(ids[i], ids[i + 1]);
    return m ? m->rank : kNoMerge;
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
    ids[best] = merges_.Find(ids[best], ids[best + 1])->new_id;
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
void BpeModel::MergeLarge(std::vector<int32_t>* ids_vec, Scratch* scratch) const {
  std::vector<int32_t>& ids = *ids_vec;
  auto& sym = scratch->symbols;
  auto& heap = scratch->heap;
  const int32_t n = static_cast<int32_t>(ids.size());
  sym.resize(n);
  heap.clear();
  for (int32_t i = 0; i < n; ++i) sym[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1};
  auto push = [&](int32_t pos) {
    const Merge* m = merges_.Find(sym[pos].id, sym[sym[pos].next].id);
    if (m == nullptr) return;
    heap.push_back({m->rank, pos, m->new_id});
    std::push_heap(heap.begin(), heap.end(), HeapGreater{});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), HeapGreater{});
    Scratch::HeapEntry top = heap.back();
    heap.pop_back();
    Scratch::Symbol& left = sym[top.pos];
    if (left.id < 0 || left.next < 0) continue;  // merged away, or last
    const Merge* m = merges_.Find(left.id, sym[left.next].id);
    if (m == nullptr || m->new_id != top.new_id) continue;  // stale entry
    int32_t right = left.next;
    left.id = top.new_id;
    left.next = sym[right].next;
    sym[right].id = -1;
    if (left.next >= 0) sym[left.next].prev = top.pos;
    if (left.prev >= 0) push(left.prev);
    if (left.next >= 0) push(top.pos);
  }
  ids.clear();
  for (int32_t i = 0; i >= 0 && i < n; i = sym[i].next) ids.push_back(sym[i].id);
}

}  // namespace dms
