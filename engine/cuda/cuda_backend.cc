#include "engine/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/core/forward_batch.h"
#include "engine/cuda/cuda_status.h"
#include "engine/cuda/cuda_workspace.h"
#include "kernels/attention.h"
#include "kernels/gemv.h"
#include "kernels/kv_append.h"
#include "kernels/launch.cuh"

namespace dms {
namespace {
constexpr int kDefaultMaxPositions = 32768;  // when config.json names none
constexpr size_t kLogitsBudget = 64u << 20;  // device bytes for one LM-head pass (110 rows of 152K)
// Chunks with at least this many query rows (tokens x group) go to the
// tensor-core attention (a tile of kAttnMmaRows rows at least half used).
constexpr int kMmaMinRows = cuda::kAttnMmaRows / 2;
cuda::AttnMmaCore CoreOf(const std::string& name) {
  if (name == "mma_sync") return cuda::AttnMmaCore::kMmaSync;
  if (name == "wgmma") return cuda::AttnMmaCore::kWgmma;
  if (name == "wgmma_ws") return cuda::AttnMmaCore::kWgmmaWs;
  return cuda::AttnMmaCore::kAuto;
}

}  // namespace

Status CudaBackend::Workspace::Allocate(const ModelConfig& cfg, int m, bool accurate,
                                        cuda::KvDType kv_dtype) {
  const size_t D = cfg.hidden_size, I = cfg.intermediate_size, hd = cfg.head_dim;
  const size_t hq = cfg.num_q_heads, hkv = cfg.num_kv_heads, M = m;
  const size_t w = std::max({D, hq * hd, I});
  const size_t kvs = cuda::KvDTypeSize(kv_dtype);
  split_rows = std::max(m, 1024);
  logit_rows = static_cast<int>(std::clamp<size_t>(kLogitsBudget / (4 * cfg.vocab_size), 1, M));
  // big holds the QKV output [M, qkv]; the gate;up product of a long step
  // runs in slices of gate_up_rows rows into the same buffer (2 I is 4x qkv
  // for Qwen3-8B: 805 MB at 8K rows instead of 201 MB).
  const size_t qkv = (hq + 2 * hkv) * hd;
  gate_up_rows = static_cast<int>(std::clamp<size_t>(M * qkv / (2 * I), 1, M));
  const size_t o_x = arena.Plan(M * D * 4), o_delta = arena.Plan(M * D * 4);
  const size_t o_hi = arena.Plan(M * w * 2), o_lo = accurate ? arena.Plan(M * w * 2) : 0;
  const size_t o_big = arena.Plan(std::max(M * qkv, static_cast<size_t>(gate_up_rows) * 2 * I) * 4);
  const size_t o_q = arena.Plan(M * hq * hd * 4), o_attn = arena.Plan(M * hq * hd * 4);
  const size_t o_k = arena.Plan(M * hkv * hd * kvs), o_v = arena.Plan(M * hkv * hd * kvs);
  const size_t o_dec = arena.Plan(M * hkv), o_alpha = arena.Plan(M * hkv * 4);
  const size_t o_slot = arena.Plan(M * hkv * 4), o_write = arena.Plan(M * hkv * 4);
  const size_t o_kidx = arena.Plan(M * hkv * 4), o_kcnt = arena.Plan(M * hkv * 4);
  const size_t o_cidx = arena.Plan(M * hkv * 4), o_ctail = arena.Plan(M * hkv * 2 * 4);
  const size_t o_po = arena.Plan(static_cast<size_t>(split_rows) * hq * hd * 4);
  const size_t o_pml = arena.Plan(static_cast<size_t>(split_rows) * hq * 2 * 4);
  const size_t o_count = arena.Plan(M * hkv * 4);
  const size_t K = cuda::kGemvMaxRows;
  const size_t o_nhi = arena.Plan(K * D * 2), o_nlo = accurate ? arena.Plan(K * D * 2) : 0;
  const size_t o_npart = arena.Plan(K * (D / cuda::kGemvColumnsPerPartial) * 4);
  const size_t o_logits = arena.Plan(static_cast<size_t>(logit_rows) * cfg.vocab_size * 4);
  const size_t o_sum = arena.Plan(static_cast<size_t>(logit_rows) * sizeof(cuda::LogitRowSummary));
  const size_t o_sum_scratch = arena.Plan(cuda::LogitSummaryScratchBytes(logit_rows, cfg.vocab_size));
  DMS_RETURN_IF_ERROR(arena.Allocate("step workspace"));
  x = arena.At<float>(o_x);
  delta = arena.At<float>(o_delta);
  gin_hi = arena.At<__nv_bfloat16>(o_hi);
  gin_lo = accurate ? arena.At<__nv_bfloat16>(o_lo) : nullptr;
  gin_elems = M * w;
  big = arena.At<float>(o_big);
  q = arena.At<float>(o_q);
  attn = arena.At<float>(o_attn);
  k_new = arena.At<void>(o_k);
  v_new = arena.At<void>(o_v);
  decisions = arena.At<uint8_t>(o_dec);
  alpha = arena.At<float>(o_alpha);
  slot_scratch = arena.At<int32_t>(o_slot);
  write_slot = arena.At<int32_t>(o_write);
  kept_index = arena.At<int32_t>(o_kidx);
  kept_count = arena.At<int32_t>(o_kcnt);
  cache_kept_index = arena.At<int32_t>(o_cidx);
  cache_tail = arena.At<int32_t>(o_ctail);
  part_o = arena.At<float>(o_po);
  part_ml = arena.At<float>(o_pml);
  split_count = arena.At<int32_t>(o_count);
  DMS_CUDA_RETURN_IF_ERROR(cudaMemset(split_count, 0, M * hkv * 4), "split counters");
  normed_hi = arena.At<__nv_bfloat16>(o_nhi);
  normed_lo = accurate ? arena.At<__nv_bfloat16>(o_nlo) : nullptr;
  norm_partials = arena.At<float>(o_npart);
  logits = arena.At<float>(o_logits);
  summaries = arena.At<cuda::LogitRowSummary>(o_sum);
  summary_scratch = arena.At<void>(o_sum_scratch);
  return OkStatus();
}

CudaBackend::CudaBackend(std::shared_ptr<const Checkpoint> checkpoint,
                         const CudaBackendOptions& options)
    : checkpoint_(std::move(checkpoint)), options_(options) {}

CudaBackend::~CudaBackend() {
  if (stream_) cudaStreamSynchronize(stream_);
}

StatusOr<std::unique_ptr<CudaBackend>> CudaBackend::Create(
    std::shared_ptr<const Checkpoint> checkpoint, const CudaBackendOptions& options) {
  if (!checkpoint) return InvalidArgumentError("CudaBackend: no checkpoint");
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess || count == 0) {
    cudaGetLastError();
    return UnavailableError(std::string("backend 'cuda': no usable CUDA GPU (") +
                            (err != cudaSuccess ? cudaGetErrorString(err) : "0 devices") + ")");
  }
  if (options.device < 0 || options.device >= count) {
    return InvalidArgumentError("backend 'cuda': device " + std::to_string(options.device) +
                                " does not exist (" + std::to_string(count) + " found)");
  }
  std::unique_ptr<CudaBackend> b(new CudaBackend(std::move(checkpoint), options));
  DMS_RETURN_IF_ERROR(b->Init());
  return b;
}

Status CudaBackend::Init() {
  const ModelConfig& cfg = config();
  const CudaBackendOptions& o = options_;
  if (o.precision != "bf16" && o.precision != "f32") {
    return InvalidArgumentError("backend 'cuda': precision '" + o.precision +
                                "' is not supported (expected bf16 or f32)");
  }
  const int hd = cfg.head_dim, g = cfg.group_size();
  if (hd != 16 && hd != 32 && hd != 64 && hd != 128) {
    return InvalidArgumentError("backend 'cuda': head_dim " + std::to_string(hd) +
                                " is not supported (expected 16, 32, 64 or 128)");
  }
  if (g > cuda::kAttnMaxRows || cfg.num_kv_heads > 64) {
    return InvalidArgumentError("backend 'cuda': " + std::to_string(cfg.num_q_heads) + "/" +
                                std::to_string(cfg.num_kv_heads) +
                                " query/KV heads are not supported (at most 16 query heads per "
                                "KV head and 64 KV heads)");
  }
  if (o.kv_block_size <= 0 || o.max_batch_tokens <= 0 || o.max_sequences <= 0) {
    return InvalidArgumentError("backend 'cuda': kv block size, max_batch_tokens and "
                                "max_sequences must be positive");
  }
  accurate_ = o.precision == "f32";
  mma_attention_ = !accurate_ && cuda::DmsAttentionMmaSupported(cuda::KvDType::kBF16, hd, g);
  decode_attention_ = !accurate_ && o.tuning.decode_attention == "streamed" &&
                      cuda::DmsDecodeAttentionSupported(cuda::KvDType::kBF16, hd, g);
  decode_on_mma_ = mma_attention_ && o.tuning.decode_attention == "mma";
  window_ = (cfg.dms.enabled && !o.force_dense) ? cfg.dms.window_size : kDenseWindow;
  max_positions_ = cfg.max_position_embeddings > 0 ? cfg.max_position_embeddings
                                                   : kDefaultMaxPositions;

  DMS_CUDA_RETURN_IF_ERROR(cudaSetDevice(o.device), "cudaSetDevice");
  cudaDeviceProp prop;
  DMS_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, o.device), "cudaGetDeviceProperties");
  device_name_ = prop.name;
  num_sms_ = prop.multiProcessorCount;
  // A/B knobs (docs/cuda.md, docs/prefill-attention.md).
  fold_norms_ = o.tuning.fold_norms;
  compact_last_layer_ = o.tuning.last_layer_logit_rows;
  cached_kept_keys_ = o.tuning.cached_kept_keys;
  q_bf16_ = o.tuning.q_bf16;
  // A process-wide kernel choice: the last backend created sets it.
  cuda::SetDmsAttentionMmaCore(CoreOf(o.tuning.attention_core));
  DMS_RETURN_IF_ERROR(stream_owner_.Create());
  stream_ = stream_owner_.get();

  DMS_RETURN_IF_ERROR(weights_.Upload(*checkpoint_, max_positions_));
  plan_.weights = weights_.bytes();

  CudaKvConfig kv;
  kv.num_layers = cfg.num_layers;
  kv.num_kv_heads = cfg.num_kv_heads;
  kv.head_dim = hd;
  kv.window = window_;
  kv.block_size = o.kv_block_size;
  kv.dtype = accurate_ ? cuda::KvDType::kF32 : cuda::KvDType::kBF16;
  // The step workspace before the pool, so that a pool sized as a share of
  // free memory sees what is really left.
  ws_ = std::make_unique<Workspace>();
  DMS_RETURN_IF_ERROR(ws_->Allocate(cfg, o.max_batch_tokens, accurate_, kv.dtype));
  if (o.device_sampling)
    DMS_RETURN_IF_ERROR(sampler_.Init(o.max_sequences, ws_->logit_rows, cfg.vocab_size));
  kv.max_sequences = o.max_sequences;
  const int blocks_per_context = (max_positions_ + o.kv_block_size - 1) / o.kv_block_size;
  kv.max_blocks_per_head = blocks_per_context;
  if (o.kv_num_blocks > 0) {
    kv.num_blocks = o.kv_num_blocks;
  } else if (o.kv_memory_fraction > 0) {
    // A share of what is free now (weights and workspace are in place), the
    // whole cache counted (tables and positions too); cuBLAS's workspace and
    // the step metadata come later.
    size_t free_bytes = 0, total_bytes = 0;
    DMS_CUDA_RETURN_IF_ERROR(cudaMemGetInfo(&free_bytes, &total_bytes), "cudaMemGetInfo");
    const int64_t later = int64_t{64} << 20;
    const double usable = static_cast<double>(std::max<int64_t>(0, static_cast<int64_t>(free_bytes) - later));
    kv.num_blocks = CudaKvCache::BlocksWithin(kv, static_cast<int64_t>(o.kv_memory_fraction * usable));
  } else {
    const int64_t block_bytes = 2LL * o.kv_block_size * hd * cuda::KvDTypeSize(kv.dtype);
    kv.num_blocks = static_cast<int>(std::clamp<int64_t>(o.kv_cache_bytes / block_bytes, 1, INT32_MAX));
  }
  kv.max_blocks_per_head = std::min(blocks_per_context, kv.num_blocks);
  DMS_ASSIGN_OR_RETURN(cache_, CudaKvCache::Create(kv));
  plan_.kv_cache = cache_->device_bytes();

  const int bs = o.kv_block_size;
  const int max_chunks = std::min(o.max_sequences, o.max_batch_tokens);
  const int64_t max_pairs = static_cast<int64_t>(cache_->heads_per_sequence()) *
                            (o.max_batch_tokens / bs + 2 * max_chunks);
  DMS_RETURN_IF_ERROR(meta_.Init(o.max_batch_tokens, max_chunks, static_cast<int>(max_pairs)));
  plan_.workspace = ws_->arena.planned() + sampler_.device_bytes();
  DMS_RETURN_IF_ERROR(host_logits_.Allocate(
      static_cast<size_t>(ws_->logit_rows) * cfg.vocab_size * 4, "logits (host)"));
  DMS_RETURN_IF_ERROR(host_summaries_.Allocate(
      static_cast<size_t>(ws_->logit_rows) * sizeof(cuda::LogitRowSummary), "logit summaries (host)"));
  DMS_RETURN_IF_ERROR(host_lengths_.Allocate(
      static_cast<size_t>(o.max_sequences) * cache_->heads_per_sequence() * 4, "KV lengths (host)"));
  DMS_RETURN_IF_ERROR(gemm_.Init(stream_));
  plan_.cublas = 32u << 20;
  // Uploads and memsets ran on the legacy stream, which stream_ does not wait for.
  DMS_CUDA_RETURN_IF_ERROR(cudaDeviceSynchronize(), "backend init");
  return OkStatus();
}

BackendInfo CudaBackend::info() const {
  BackendInfo i;
  i.name = "cuda";
  i.device = device_name_ + (accurate_ ? " (f32 KV)" : " (bf16 KV)");
  i.kv_block_size = cache_->config().block_size;
  i.kv_num_blocks = cache_->config().num_blocks;
  i.kv_bytes_per_block = cache_->block_bytes();
  i.weights_bytes = static_cast<int64_t>(plan_.weights);
  i.kv_pool_bytes = static_cast<int64_t>(plan_.kv_cache);
  i.workspace_bytes = static_cast<int64_t>(plan_.workspace + plan_.cublas);
  i.dms_eviction = window_ != kDenseWindow;
  i.kv_policies = true;  // cuda_kv_policy.cc (refused on an evicting cache)
  i.sampling = options_.device_sampling;  // device_sampler.h
  i.tuning = FormatCudaTuning(options_.tuning);
  return i;
}

DeviceMemoryInfo CudaBackend::DeviceMemory() const {
  DeviceMemoryInfo m;
  size_t free_bytes = 0, total_bytes = 0;
  // cudaMemGetInfo does not wait for queued work.
  if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) return m;
  m.available = true;
  m.device = "cuda:" + std::to_string(options_.device) + " " + device_name_;
  m.total = static_cast<int64_t>(total_bytes);
  m.used = static_cast<int64_t>(total_bytes - free_bytes);
  peak_device_used_ = std::max(peak_device_used_, m.used);
  m.peak = peak_device_used_;
  return m;
}

StatusOr<SeqId> CudaBackend::CreateSequence() {
  DMS_ASSIGN_OR_RETURN(SeqId seq, cache_->AddSequence(stream_));
  if (options_.device_sampling)
    DMS_RETURN_IF_ERROR(sampler_.Clear(seq, stream_));  // no history: an empty one
  return seq;
}

Status CudaBackend::SetTokenHistory(SeqId seq, std::span<const int32_t> prompt,
                                    std::span<const int32_t> output) {
  if (!options_.device_sampling) return Backend::SetTokenHistory(seq, prompt, output);
  if (!cache_->HasSequence(seq))
    return InvalidArgumentError("unknown sequence id " + std::to_string(seq));
  return sampler_.SetHistory(seq, prompt, output, stream_);
}

void CudaBackend::ReleaseSequence(SeqId seq) {
  captures_.erase(seq);
  cache_->FreeSequence(seq);
}

int CudaBackend::KvBlocksNeeded(SeqId seq, int num_new_tokens) const {
  return cache_->BlocksNeeded(seq, num_new_tokens);
}

SequenceKvStats CudaBackend::SequenceStats(SeqId seq) const { return cache_->SequenceStats(seq); }

int CudaBackend::SequenceBlocks(SeqId seq) const { return cache_->blocks().NumBlocks(seq); }

void CudaBackend::AddLayerStats(SeqId seq, std::span<int64_t> retained,
                                std::span<int64_t> logical) const {
  cache_->blocks().AddLayerStats(seq, retained, logical);
}

KvPoolStats CudaBackend::PoolStats() const { return cache_->PoolStats(); }

Status CudaBackend::set_decision_trace(std::vector<uint8_t>* sink) {
  if (sink && host_trace_.size() == 0) {
    const ModelConfig& cfg = config();
    DMS_RETURN_IF_ERROR(host_trace_.Allocate(static_cast<size_t>(cfg.num_layers) *
                                                 options_.max_batch_tokens * cfg.num_kv_heads,
                                             "decision trace"));
  }
  trace_sink_ = sink;
  return OkStatus();
}

Status CudaBackend::Validate(std::span<const ForwardChunk> batch, int64_t* total_tokens) const {
  DMS_RETURN_IF_ERROR(ValidateForwardBatch(
      config(), batch,
      [this](SeqId seq) -> int64_t { return cache_->HasSequence(seq) ? cache_->LogicalTokens(seq) : -1; },
      total_tokens));
  // Limits of this backend's fixed-size buffers.
  for (const ForwardChunk& c : batch) {
    if (c.sampling && !options_.device_sampling) {
      return FailedPreconditionError(
          "sampling on the device is off (CudaBackendOptions::device_sampling)");
    }
    const int64_t end = cache_->LogicalTokens(c.seq) + static_cast<int64_t>(c.tokens.size());
    if (end > max_positions_) {
      return InvalidArgumentError("sequence length " + std::to_string(end) +
                                  " exceeds the CUDA backend's position limit " + std::to_string(max_positions_));
    }
  }
  if (*total_tokens > options_.max_batch_tokens) {
    return InvalidArgumentError("step of " + std::to_string(*total_tokens) +
                                " tokens exceeds the CUDA backend's max_batch_tokens " +
                                std::to_string(options_.max_batch_tokens));
  }
  return OkStatus();
}

Status CudaBackend::Forward(std::span<const ForwardChunk> batch, ForwardResult* out) {
  int64_t total = 0;
  DMS_RETURN_IF_ERROR(Validate(batch, &total));
  // Reserve every chunk's worst case first, so a full pool fails the step
  // before anything is applied.
  int needed = 0;
  for (const ForwardChunk& c : batch) needed += cache_->BlocksNeeded(c.seq, c.tokens.size());
  if (needed > cache_->num_free_blocks()) {
    return ResourceExhaustedError("KV cache full: the step needs " + std::to_string(needed) +
                                  " blocks, " + std::to_string(cache_->num_free_blocks()) +
                                  " of " + std::to_string(cache_->config().num_blocks) +
                                  " are free");
  }
  cache_->ClearUpdates();
  for (const ForwardChunk& c : batch) DMS_RETURN_IF_ERROR(cache_->Reserve(c.seq, c.tokens.size()));

  // Step metadata. Chunks of a decode-sized query count take SIMT tiles
  // (split-K over the cache), the others tensor-core tiles, heaviest first
  // (the last tokens of a chunk see the most keys).
  const int g = config().group_size();
  const int simt_per_tile = std::max(1, cuda::kAttnMaxRows / g);
  const int mma_per_tile =
      std::max(1, cuda::DmsAttentionMmaRows(config().head_dim) / g);
  auto use_mma = [&](const ForwardChunk& c) {
    return mma_attention_ && (decode_on_mma_ || static_cast<int>(c.tokens.size()) * g >= kMmaMinRows);
  };
  int32_t* tokens = meta_.tokens();
  int32_t* positions = meta_.positions();
  int32_t* row_chunk = meta_.row_chunk();
  cuda::StepChunk* chunks = meta_.chunks();
  cuda::AttnTile* tiles = meta_.tiles();
  int32_t* logit_rows = meta_.logit_rows();
  int rows = 0, num_logit_rows = 0;
  bool decode_only = true;
  for (size_t ci = 0; ci < batch.size(); ++ci) {
    const ForwardChunk& c = batch[ci];
    const int n = static_cast<int>(c.tokens.size());
    const int t0 = cache_->LogicalTokens(c.seq);
    chunks[ci] = cuda::StepChunk{c.seq, t0, n, rows};
    for (int i = 0; i < n; ++i) {
      tokens[rows + i] = c.tokens[i];
      positions[rows + i] = t0 + i;
      row_chunk[rows + i] = static_cast<int32_t>(ci);
    }
    for (int i = n - c.num_logits; i < n; ++i) logit_rows[num_logit_rows++] = rows + i;
    decode_only &= n == 1;
    rows += n;
  }
  int simt_tiles = 0, mma_tiles = 0;
  for (size_t ci = 0; ci < batch.size(); ++ci) {
    const int n = static_cast<int>(batch[ci].tokens.size());
    if (use_mma(batch[ci])) continue;
    for (int q = 0; q < n; q += simt_per_tile) {
      tiles[simt_tiles++] =
          cuda::AttnTile{static_cast<int32_t>(ci), q, std::min(simt_per_tile, n - q)};
    }
  }
  for (size_t ci = 0; ci < batch.size(); ++ci) {
    const int n = static_cast<int>(batch[ci].tokens.size());
    if (!use_mma(batch[ci])) continue;
    for (int q = (n - 1) / mma_per_tile * mma_per_tile; q >= 0; q -= mma_per_tile) {
      tiles[simt_tiles + mma_tiles++] =
          cuda::AttnTile{static_cast<int32_t>(ci), q, std::min(mma_per_tile, n - q)};
    }
  }
  const int num_tiles = simt_tiles + mma_tiles;
  const std::vector<int32_t>& updates = cache_->updates();
  const int num_pairs = static_cast<int>(updates.size() / 2);
  if (num_pairs > meta_.max_update_pairs()) {
    return InternalError("CUDA backend: page-table update list overflow");
  }
  std::memcpy(meta_.updates(), updates.data(), updates.size() * sizeof(int32_t));
  DMS_RETURN_IF_ERROR(meta_.Upload(stream_, rows, static_cast<int>(batch.size()), num_tiles,
                                   num_logit_rows, num_pairs));
  DMS_CUDA_RETURN_IF_ERROR(
      cuda::LaunchPageTableScatter(cache_->view().page_table, meta_.d_updates(), num_pairs, stream_),
      "page-table update");
  cache_->ClearUpdates();

  decode_step_ = decode_only && decode_attention_;
  const int splits = PlanSplits(simt_tiles, rows);
  const int num_chunks = static_cast<int>(batch.size());
  const int first_pass = std::min(ws_->logit_rows, num_logit_rows);
  step_rows_ = rows;
  last_rows_ = LastLayerRows(rows, num_logit_rows);
  auto enqueue = [&]() -> Status {
    // Few rows: the matmuls are GEMVs, launched to overlap the kernel before
    // them (kernels/launch.cuh).
    cuda::ProgrammaticLaunchScope pdl(rows <= cuda::kGemvMaxRows && gemm_.use_gemv(),
                                      options_.tuning.pdl_groups);
    DMS_RETURN_IF_ERROR(RunLayers(rows, num_chunks, simt_tiles, mma_tiles, splits, last_rows_));
    return EnqueueLogits(0, first_pass);
  };
  if (use_graphs_ && decode_only && !trace_sink_ && !CapturesAny(batch)) {
    const StepGraphs::Key key{rows, num_chunks, simt_tiles, mma_tiles, splits, first_pass};
    DMS_RETURN_IF_ERROR(graphs_.Launch(key, stream_, enqueue));
  } else {
    DMS_RETURN_IF_ERROR(enqueue());
  }
  DMS_RETURN_IF_ERROR(ComputeLogits(batch, num_logit_rows, out));

  // The stream is idle now (ComputeLogits synchronised): commit the lengths.
  const int32_t* lengths = static_cast<const int32_t*>(host_lengths_.get());
  for (const ForwardChunk& c : batch) {
    cache_->CommitStep(c.seq, static_cast<int>(c.tokens.size()), lengths);
  }
  if (trace_sink_) {
    const size_t n = static_cast<size_t>(config().num_layers) * rows * config().num_kv_heads;
    const uint8_t* t = static_cast<const uint8_t*>(host_trace_.get());
    trace_sink_->insert(trace_sink_->end(), t, t + n);
  }
  return OkStatus();
}

}  // namespace dms
