#include "engine/cuda/cuda_kv_cache.h"

#include <algorithm>
#include <string>

#include "engine/cuda/cuda_status.h"

namespace dms {

namespace {

int64_t KvBlockBytes(const CudaKvConfig& c) {
  return 2LL * c.block_size * c.head_dim * cuda::KvDTypeSize(c.dtype);
}

struct KvLayout {  // arena offsets
  size_t pool, pos, len, table, ring_slot, ring_evict;
};

// The one place the cache's device layout is planned (Create and
// DeviceBytesFor both use it, so a budget computes exactly what is allocated).
KvLayout PlanKvLayout(const CudaKvConfig& c, Arena* a) {
  const size_t heads = static_cast<size_t>(c.max_sequences) * c.num_layers * c.num_kv_heads;
  const size_t ring = c.window == kDenseWindow ? 0 : c.window + 1;
  KvLayout l;
  l.pool = a->Plan(static_cast<size_t>(c.num_blocks) * KvBlockBytes(c));
  l.pos = a->Plan(static_cast<size_t>(c.num_blocks) * c.block_size * 4);
  l.len = a->Plan(heads * 4);
  l.table = a->Plan(heads * c.max_blocks_per_head * 4);
  l.ring_slot = a->Plan(heads * ring * 4);
  l.ring_evict = a->Plan(heads * ring);
  return l;
}

}  // namespace

int64_t CudaKvCache::DeviceBytesFor(const CudaKvConfig& config) {
  Arena a;
  PlanKvLayout(config, &a);
  return static_cast<int64_t>(a.planned());
}

int CudaKvCache::BlocksWithin(const CudaKvConfig& config, int64_t budget) {
  CudaKvConfig c = config;
  c.num_blocks = 0;
  // Each of the two per-block allocations rounds up by at most one alignment unit.
  const int64_t fixed = DeviceBytesFor(c) + 2 * static_cast<int64_t>(Arena::kAlign);
  const int64_t per_block = KvBlockBytes(c) + 4LL * c.block_size;
  const int64_t n = (budget - fixed) / per_block;
  return static_cast<int>(std::clamp<int64_t>(n, 1, INT32_MAX));
}

StatusOr<std::unique_ptr<CudaKvCache>> CudaKvCache::Create(const CudaKvConfig& config) {
  if (config.block_size <= 0 || config.num_blocks <= 0 || config.max_sequences <= 0 ||
      config.max_blocks_per_head <= 0) {
    return InvalidArgumentError("CUDA KV cache: block size, pool size, sequence slots and "
                                "blocks per head must be positive");
  }
  const int64_t table_entries = static_cast<int64_t>(config.max_sequences) * config.num_layers *
                                config.num_kv_heads * config.max_blocks_per_head;
  if (table_entries >= (int64_t{1} << 31)) {
    return InvalidArgumentError("CUDA KV cache: page tables of " + std::to_string(table_entries) +
                                " entries exceed int32 indexing (lower max_sequences)");
  }
  std::unique_ptr<CudaKvCache> c(new CudaKvCache(config));
  const int64_t heads = static_cast<int64_t>(config.max_sequences) * config.num_layers *
                        config.num_kv_heads;
  const int ring = config.window == kDenseWindow ? 0 : config.window + 1;
  Arena& a = c->arena_;
  const KvLayout l = PlanKvLayout(config, &a);
  DMS_RETURN_IF_ERROR(a.Allocate("KV cache"));
  DMS_CUDA_RETURN_IF_ERROR(cudaMemset(a.At<char>(l.len), 0, heads * 4), "KV cache init");
  DMS_CUDA_RETURN_IF_ERROR(cudaMemset(a.At<char>(l.ring_evict), 0, heads * ring), "KV cache init");

  cuda::KvDeviceView& v = c->view_;
  v.pool = a.At<void>(l.pool);
  v.pool_pos = a.At<int32_t>(l.pos);
  v.head_len = a.At<int32_t>(l.len);
  v.page_table = a.At<int32_t>(l.table);
  v.ring_slot = a.At<int32_t>(l.ring_slot);
  v.ring_evict = a.At<uint8_t>(l.ring_evict);
  v.num_layers = config.num_layers;
  v.num_kv_heads = config.num_kv_heads;
  v.head_dim = config.head_dim;
  v.block_size = config.block_size;
  v.max_blocks_per_head = config.max_blocks_per_head;
  v.window = config.window;
  v.dtype = config.dtype;

  c->seqs_.resize(config.max_sequences);
  for (SeqId s = config.max_sequences - 1; s >= 0; --s) c->free_slots_.push_back(s);
  for (int32_t b = config.num_blocks - 1; b >= 0; --b) c->free_.push_back(b);
  return c;
}

int64_t CudaKvCache::block_bytes() const { return KvBlockBytes(config_); }

StatusOr<SeqId> CudaKvCache::AddSequence(cudaStream_t stream) {
  if (free_slots_.empty()) {
    return ResourceExhaustedError("CUDA backend: all " + std::to_string(config_.max_sequences) +
                                  " sequence slots are in use (raise max_sequences)");
  }
  const SeqId s = free_slots_.back();
  const int64_t heads = heads_per_sequence();
  const int ring = config_.window == kDenseWindow ? 0 : config_.window + 1;
  DMS_CUDA_RETURN_IF_ERROR(
      cudaMemsetAsync(view_.head_len + s * heads, 0, heads * 4, stream), "sequence reset");
  if (ring > 0) {
    DMS_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(view_.ring_evict + s * heads * ring, 0, heads * ring, stream),
        "sequence reset");
    DMS_CUDA_RETURN_IF_ERROR(
        cudaMemsetAsync(view_.ring_slot + s * heads * ring, 0xff, heads * ring * 4, stream),
        "sequence reset");
  }
  free_slots_.pop_back();
  SeqState& st = seqs_[s];
  st.live = true;
  st.num_tokens = 0;
  st.heads.assign(heads, HeadState());
  return s;
}

bool CudaKvCache::HasSequence(SeqId seq) const {
  return seq >= 0 && seq < static_cast<SeqId>(seqs_.size()) && seqs_[seq].live;
}

void CudaKvCache::FreeSequence(SeqId seq) {
  if (!HasSequence(seq)) return;
  for (HeadState& h : seqs_[seq].heads) {
    for (int32_t b : h.blocks) free_.push_back(b);
  }
  seqs_[seq] = SeqState();
  free_slots_.push_back(seq);
}

int CudaKvCache::LogicalTokens(SeqId seq) const {
  return HasSequence(seq) ? seqs_[seq].num_tokens : 0;
}

int CudaKvCache::MaxHeadLength(SeqId seq) const {
  int m = 0;
  if (HasSequence(seq)) {
    for (const HeadState& h : seqs_[seq].heads) m = std::max(m, h.length);
  }
  return m;
}

int CudaKvCache::BlocksNeeded(SeqId seq, int num_new_tokens) const {
  if (!HasSequence(seq)) return 0;
  const int bs = config_.block_size;
  int needed = 0;
  for (const HeadState& h : seqs_[seq].heads) {
    const int want = (h.length + num_new_tokens + bs - 1) / bs;
    needed += std::max(0, want - static_cast<int>(h.blocks.size()));
  }
  return needed;
}

Status CudaKvCache::Reserve(SeqId seq, int num_new_tokens) {
  if (!HasSequence(seq)) return InvalidArgumentError("unknown sequence id " + std::to_string(seq));
  const int needed = BlocksNeeded(seq, num_new_tokens);
  if (needed > num_free_blocks()) {
    return ResourceExhaustedError("KV cache: " + std::to_string(num_new_tokens) +
                                  " new tokens need " + std::to_string(needed) +
                                  " more blocks but only " + std::to_string(num_free_blocks()) +
                                  " of " + std::to_string(config_.num_blocks) + " are free");
  }
  const int bs = config_.block_size;
  std::vector<HeadState>& heads = seqs_[seq].heads;
  for (const HeadState& h : heads) {
    const int want = (h.length + num_new_tokens + bs - 1) / bs;
    if (want > config_.max_blocks_per_head) {
      return ResourceExhaustedError("KV cache: a head of sequence " + std::to_string(seq) +
                                    " would need " + std::to_string(want) +
                                    " blocks, more than its page table holds (" +
                                    std::to_string(config_.max_blocks_per_head) + ")");
    }
  }
  for (size_t i = 0; i < heads.size(); ++i) {
    HeadState& h = heads[i];
    const int want = (h.length + num_new_tokens + bs - 1) / bs;
    while (static_cast<int>(h.blocks.size()) < want) {
      const int32_t b = free_.back();
      free_.pop_back();
      const int64_t index = (static_cast<int64_t>(seq) * heads.size() + i) *
                                config_.max_blocks_per_head + h.blocks.size();
      updates_.push_back(static_cast<int32_t>(index));
      updates_.push_back(b);
      h.blocks.push_back(b);
    }
  }
  return OkStatus();
}

void CudaKvCache::CommitStep(SeqId seq, int num_new_tokens, const int32_t* lengths) {
  if (!HasSequence(seq)) return;
  SeqState& st = seqs_[seq];
  st.num_tokens += num_new_tokens;
  const int bs = config_.block_size;
  const int64_t base = static_cast<int64_t>(seq) * st.heads.size();
  for (size_t i = 0; i < st.heads.size(); ++i) {
    HeadState& h = st.heads[i];
    h.length = lengths[base + i];
    const size_t keep = (h.length + bs - 1) / bs;
    while (h.blocks.size() > keep) {
      free_.push_back(h.blocks.back());
      h.blocks.pop_back();
    }
  }
}

SequenceKvStats CudaKvCache::SequenceStats(SeqId seq) const {
  SequenceKvStats stats;
  if (!HasSequence(seq)) return stats;
  const SeqState& st = seqs_[seq];
  stats.logical_tokens = st.num_tokens;
  stats.retained.assign(config_.num_layers, std::vector<int>(config_.num_kv_heads, 0));
  double ratio_sum = 0;
  int n = 0;
  for (int l = 0; l < config_.num_layers; ++l) {
    for (int h = 0; h < config_.num_kv_heads; ++h) {
      const HeadState& hs = st.heads[static_cast<size_t>(l) * config_.num_kv_heads + h];
      stats.retained[l][h] = hs.length;
      stats.blocks += static_cast<int>(hs.blocks.size());
      ratio_sum += hs.length > 0 ? static_cast<double>(st.num_tokens) / hs.length : 1.0;
      ++n;
    }
  }
  stats.compression_ratio = n > 0 ? ratio_sum / n : 1.0;
  return stats;
}

KvPoolStats CudaKvCache::PoolStats() const {
  KvPoolStats stats;
  stats.num_blocks = config_.num_blocks;
  stats.blocks_free = num_free_blocks();
  stats.blocks_used = config_.num_blocks - stats.blocks_free;
  stats.block_size = config_.block_size;
  for (const SeqState& s : seqs_) {
    if (!s.live) continue;
    ++stats.num_sequences;
    stats.logical_tokens += s.num_tokens;
    for (const HeadState& h : s.heads) stats.retained_tokens += h.length;
  }
  return stats;
}

int CudaKvCache::HeadLength(SeqId seq, int layer, int head) const {
  if (!HasSequence(seq) || layer < 0 || layer >= config_.num_layers || head < 0 ||
      head >= config_.num_kv_heads) {
    return 0;
  }
  return seqs_[seq].heads[static_cast<size_t>(layer) * config_.num_kv_heads + head].length;
}

Status CudaKvCache::CheckCompaction(SeqId seq, int layer, int head,
                                    std::span<const int32_t> kept) const {
  if (!HasSequence(seq)) return InvalidArgumentError("unknown sequence id " + std::to_string(seq));
  if (layer < 0 || layer >= config_.num_layers || head < 0 || head >= config_.num_kv_heads) {
    return InvalidArgumentError("KV compaction: no layer " + std::to_string(layer) + " head " +
                                std::to_string(head));
  }
  if (config_.window != kDenseWindow) {
    return FailedPreconditionError("KV compaction needs a dense cache; this one evicts by DMS decisions");
  }
  const int length = HeadLength(seq, layer, head);
  for (size_t i = 0; i < kept.size(); ++i) {
    const int32_t s = kept[i];
    if (s < 0 || s >= length || (i > 0 && s <= kept[i - 1])) {
      return InvalidArgumentError("KV compaction of layer " + std::to_string(layer) + " head " +
                                  std::to_string(head) + ": kept slots must ascend within [0, " +
                                  std::to_string(length) + "), got " + std::to_string(s) +
                                  " at index " + std::to_string(i));
    }
  }
  return OkStatus();
}

void CudaKvCache::CommitCompaction(SeqId seq, int layer, int head, int kept) {
  if (!HasSequence(seq)) return;
  HeadState& h = seqs_[seq].heads[static_cast<size_t>(layer) * config_.num_kv_heads + head];
  h.length = kept;
  const size_t keep_blocks = (kept + config_.block_size - 1) / config_.block_size;
  while (h.blocks.size() > keep_blocks) {
    free_.push_back(h.blocks.back());
    h.blocks.pop_back();
  }
}

}  // namespace dms
