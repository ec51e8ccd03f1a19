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
  KvBlockManagerConfig blocks;
  blocks.num_layers = config.num_layers;
  blocks.num_kv_heads = config.num_kv_heads;
  blocks.block_size = config.block_size;
  blocks.num_blocks = config.num_blocks;
  blocks.max_sequences = config.max_sequences;
  blocks.max_blocks_per_head = config.max_blocks_per_head;
  std::unique_ptr<CudaKvCache> c(new CudaKvCache(config, blocks));
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

  return c;
}

int64_t CudaKvCache::block_bytes() const { return KvBlockBytes(config_); }

StatusOr<SeqId> CudaKvCache::AddSequence(cudaStream_t stream) {
  DMS_ASSIGN_OR_RETURN(const SeqId s, blocks_.AddSequence());
  const int64_t heads = heads_per_sequence();
  const int ring = config_.window == kDenseWindow ? 0 : config_.window + 1;
  Status st = CudaStatus(cudaMemsetAsync(view_.head_len + s * heads, 0, heads * 4, stream),
                         "sequence reset");
  if (st.ok() && ring > 0) {
    st = CudaStatus(cudaMemsetAsync(view_.ring_evict + s * heads * ring, 0, heads * ring, stream),
                    "sequence reset");
    if (st.ok()) {
      st = CudaStatus(
          cudaMemsetAsync(view_.ring_slot + s * heads * ring, 0xff, heads * ring * 4, stream),
          "sequence reset");
    }
  }
  if (!st.ok()) blocks_.FreeSequence(s);
  DMS_RETURN_IF_ERROR(st);
  return s;
}

Status CudaKvCache::Reserve(SeqId seq, int num_new_tokens) {
  blocks_.ClearTableWrites();
  DMS_RETURN_IF_ERROR(blocks_.Reserve(seq, num_new_tokens));
  const int64_t heads = heads_per_sequence();
  for (const KvBlockManager::TableWrite& w : blocks_.table_writes()) {
    const int64_t index =
        (static_cast<int64_t>(w.seq) * heads + w.head) * config_.max_blocks_per_head + w.position;
    updates_.push_back(static_cast<int32_t>(index));
    updates_.push_back(w.block);
  }
  blocks_.ClearTableWrites();
  return OkStatus();
}

int CudaKvCache::HeadLength(SeqId seq, int layer, int head) const {
  if (layer < 0 || layer >= config_.num_layers || head < 0 || head >= config_.num_kv_heads) {
    return 0;
  }
  return blocks_.Length(seq, layer * config_.num_kv_heads + head);
}

}  // namespace dms
