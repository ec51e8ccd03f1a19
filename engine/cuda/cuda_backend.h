// CudaBackend: the Backend interface on one NVIDIA GPU, with the same
// semantics as CpuBackend (engine/cpu/cpu_backend.cc is the reference).
//
// Memory plan, allocated once in Create with plain cudaMalloc: the weights
// (bf16, q/k/v and gate/up fused), a workspace sized for max_batch_tokens
// tokens per step, the KV pool sized by kv_cache_bytes (or kv_num_blocks), and
// fixed per-step metadata buffers. A step allocates nothing on the device and
// synchronises once, at the end, to return the logits (and the heads' new
// lengths for the host mirror, see cuda_kv_cache.h).
//
// Threading: as Backend (one driving thread). After an INTERNAL error (a
// failed CUDA call) the device state is undefined: recreate the backend.
#pragma once

#include <cuda_runtime.h>

#include <memory>
#include <unordered_map>
#include <vector>

#include "engine/core/backend.h"
#include "engine/cuda/cublas_linear.h"
#include "engine/cuda/cuda_kv_cache.h"
#include "engine/cuda/cuda_module_api.h"
#include "engine/cuda/cuda_weights.h"
#include "engine/cuda/device_memory.h"
#include "engine/cuda/device_sampler.h"
#include "engine/cuda/step_graphs.h"
#include "engine/cuda/step_metadata.h"
#include "engine/model/checkpoint.h"

namespace dms {
namespace cuda {
struct QkvEpilogueParams;  // kernels/qkv_epilogue.h
}  // namespace cuda

struct CudaMemoryPlan {
  size_t weights = 0;
  size_t kv_cache = 0;     // pool, page tables, rings
  size_t workspace = 0;    // activations, attention partials, logits, metadata
  size_t cublas = 0;
  size_t total() const { return weights + kv_cache + workspace + cublas; }
};

class CudaBackend : public Backend {
 public:
  // UNAVAILABLE when no GPU can be used; INVALID_ARGUMENT for a model or
  // options the kernels do not support; RESOURCE_EXHAUSTED when the plan
  // does not fit the device.
  static StatusOr<std::unique_ptr<CudaBackend>> Create(std::shared_ptr<const Checkpoint> checkpoint,
                                                       const CudaBackendOptions& options);
  ~CudaBackend() override;

  const ModelConfig& config() const override { return checkpoint_->config(); }
  BackendInfo info() const override;
  DeviceMemoryInfo DeviceMemory() const override;
  StatusOr<SeqId> CreateSequence() override;
  void ReleaseSequence(SeqId seq) override;
  int KvBlocksNeeded(SeqId seq, int num_new_tokens) const override;
  using Backend::Forward;
  Status Forward(std::span<const ForwardChunk> batch, ForwardResult* out) override;
  SequenceKvStats SequenceStats(SeqId seq) const override;
  int SequenceBlocks(SeqId seq) const override;
  void AddLayerStats(SeqId seq, std::span<int64_t> retained,
                     std::span<int64_t> logical) const override;
  KvPoolStats PoolStats() const override;
  // Sampling on the device (device_sampler.h).
  Status SetTokenHistory(SeqId seq, std::span<const int32_t> prompt,
                         std::span<const int32_t> output) override;

  // Training-free KV policies (cuda_kv_policy.cc, docs/kv-policies.md): the
  // queries are recorded on the device during prefill, a layer's entries are
  // copied to the host and scored there by engine/policies/kv_scores.h (the
  // CPU backend's functions), compaction runs on the device.
  Status SetKvCapture(SeqId seq, const KvCaptureSpec& spec) override;
  Status ScoreKvLayer(SeqId seq, int layer, const KvPolicySpec& spec,
                      std::vector<KvHeadScores>* out) override;
  Status CompactKv(SeqId seq, int layer, std::span<const std::vector<int32_t>> kept_slots) override;

  const CudaMemoryPlan& memory_plan() const { return plan_; }
  bool accurate() const { return accurate_; }

  // For tests: when set, each later Forward appends the DMS decisions of the
  // step to *sink as [layers][N][Hkv] (N = the step's tokens, batch order).
  Status set_decision_trace(std::vector<uint8_t>* sink);

  // Tests and benchmarks: decode steps (every chunk one token) replay a
  // captured CUDA graph per step shape (default on; off while a decision
  // trace is set); decode-sized GEMMs use the GEMV kernel (default on).
  void set_use_graphs(bool on) { use_graphs_ = on; }
  void set_use_gemv(bool on) {
    gemm_.set_use_gemv(on);
    graphs_.Clear();  // captured with the other choice
  }
  // Decode steps fold the RMSNorms into the GEMVs (kernels/gemv.h;
  // CudaTuning::fold_norms).
  void set_fold_norms(bool on) {
    fold_norms_ = on;
    graphs_.Clear();
  }
  size_t num_step_graphs() const { return graphs_.size(); }

 private:
  struct Workspace;

  CudaBackend(std::shared_ptr<const Checkpoint> checkpoint, const CudaBackendOptions& options);
  Status Init();
  Status Validate(std::span<const ForwardChunk> batch, int64_t* total_tokens) const;
  int PlanSplits(int num_simt_tiles, int num_tokens) const;
  // Whether a step of n tokens folds its RMSNorms into the GEMVs.
  bool FoldNorms(int n) const;
  // Prefill steps (more rows than a GEMV takes, bf16 activations: one GEMM a
  // matmul): o_proj (when it has no bias) and down_proj add into x in the
  // GEMM (cuBLAS beta 1) instead of leaving their output in w.delta for the
  // norm after them, a [n, D] f32 write and read and the norm's write of x
  // fewer, twice a layer. A function of the rows, so that a logits pass
  // enqueued after a replayed graph agrees with the graph.
  bool AddsResidualInGemm(int n) const;
  // The rows the last layer's o_proj and MLP run on for a step of n rows of
  // which logit_rows need logits: those alone (moved to the front) when
  // they are fewer and at most kLastLayerMaxRows, else n. Not on the folded
  // decode path; CudaTuning::last_layer_logit_rows.
  static constexpr int kLastLayerMaxRows = 64;
  int LastLayerRows(int n, int logit_rows) const;
  // The layer loop. Tiles [0, simt_tiles) of the step's tile table go to the
  // SIMT attention kernel, the next mma_tiles to the tensor-core one;
  // last_rows = LastLayerRows(num_tokens, the step's logit rows).
  Status RunLayers(int num_tokens, int num_chunks, int simt_tiles, int mma_tiles, int num_splits,
                   int last_rows);
  // Final norm + LM head for logit rows [r0, r0 + rows) into the workspace.
  Status EnqueueLogits(int r0, int rows);
  // Summarises every logit row on the device and copies the summaries and
  // the rows of full_logits chunks out, the first LM-head pass already
  // enqueued, and runs the others; synchronises the stream (and copies the
  // heads' lengths back for the host mirror).
  Status ComputeLogits(std::span<const ForwardChunk> batch, int rows, ForwardResult* out);

  // What SetKvCapture records for one sequence, in device memory allocated
  // when the capture starts and freed when it stops (once per request).
  struct KvCapture {
    KvCaptureSpec spec;
    // snapkv: the last spec.last_queries queries after RoPE (as attention
    // uses them), position p in slot p % last_queries of every layer.
    DeviceBuffer ring;               // [layers, last_queries, Hq, hd] f32
    std::vector<int32_t> ring_pos;   // [last_queries] -1 = empty (all layers alike)
    // expected-attention: sums over the pre-RoPE queries of positions >=
    // spec.stats_from, in double.
    DeviceBuffer stats;              // [layers] x (sum [Hq, hd], outer [Hq, hd, hd]) f64
    int64_t count = 0;
  };
  // True when a chunk of `batch` belongs to a sequence being captured (its
  // step then runs eagerly: a decode graph must not bake in the copies).
  bool CapturesAny(std::span<const ForwardChunk> batch) const;
  // The capture hook of RunLayers, right after layer `layer`'s QKV epilogue
  // `e` (w.q holds q with RoPE, w.big the raw QKV): records the queries of
  // the step's captured chunks. Enqueues device work only.
  Status CaptureQueries(int layer, const cuda::QkvEpilogueParams& e, int num_chunks);
  // Grow-only scratch for scoring and compaction (device and pinned host).
  Status EnsurePolicyScratch(size_t device_bytes, size_t host_bytes);

  std::shared_ptr<const Checkpoint> checkpoint_;
  CudaBackendOptions options_;
  CudaStream stream_owner_;     // first: destroyed after everything using it
  bool accurate_ = false;       // precision "f32"
  int window_ = 0;              // W, or kDenseWindow
  int max_positions_ = 0;
  int num_sms_ = 0;
  bool fold_norms_ = true;
  int step_rows_ = 0;           // rows of the step being enqueued (ForwardBatch)
  int last_rows_ = 0;           // its LastLayerRows
  bool compact_last_layer_ = true;
  // Prefill tiles walk the cached-slot list (LaunchDmsCachedKeptKeys), or
  // every cached slot (CudaTuning::cached_kept_keys).
  bool cached_kept_keys_ = true;
  // Prefill steps on the tensor-core attention alone pass q as bf16
  // (CudaTuning::q_bf16).
  bool q_bf16_ = true;
  std::string device_name_;
  mutable int64_t peak_device_used_ = 0;  // engine thread only (DeviceMemory)
  cudaStream_t stream_ = nullptr;  // stream_owner_.get()
  CudaWeights weights_;
  std::unique_ptr<CudaKvCache> cache_;
  CublasLinear gemm_;
  std::unique_ptr<Workspace> ws_;
  StepMetadata meta_;
  PinnedBuffer host_logits_;    // [logit_chunk_rows, vocab]
  PinnedBuffer host_summaries_; // [logit_chunk_rows] cuda::LogitRowSummary
  std::vector<bool> full_rows_; // [step logit rows] ComputeLogits scratch
  std::vector<SampleRowRequest> sample_rows_;  // [step logit rows] ComputeLogits scratch
  DeviceSampler sampler_;
  PinnedBuffer host_lengths_;   // [max_sequences * layers * kv_heads]
  PinnedBuffer host_trace_;     // [layers, max_batch_tokens, Hkv] when tracing
  std::vector<uint8_t>* trace_sink_ = nullptr;
  StepGraphs graphs_;
  bool use_graphs_ = true;
  bool mma_attention_ = false;  // bf16 cache, head_dim 64/128: prefill on tensor cores
  bool decode_attention_ = false;  // the cache and shape LaunchDmsDecodeAttention takes
  bool decode_on_mma_ = false;     // decode chunks take tensor-core tiles too
  bool decode_step_ = false;       // the step being enqueued runs it
  CudaMemoryPlan plan_;
  // KV policies: the captures, the epilogue replay's scratch (pre-RoPE
  // queries of kCaptureRows rows, an identity RoPE table), scoring and
  // compaction scratch. Allocated on first use, not in the memory plan.
  std::unordered_map<SeqId, KvCapture> captures_;
  DeviceBuffer capture_scratch_;
  DeviceBuffer policy_scratch_;
  PinnedBuffer policy_host_;
};

}  // namespace dms
