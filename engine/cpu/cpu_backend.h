// CpuBackend: the reference implementation of Backend (Qwen3 + DMS, fp32 math
// on bf16/f16/f32 weights read straight from the mmapped checkpoint).
//
// It is the oracle the CUDA kernels are checked against and the backend CI
// tests the server with: written to be obviously right first, multi-threaded
// second. Threading: as Backend (one driving thread); uses its own ThreadPool.
#pragma once

#include <memory>
#include <unordered_map>
#include <vector>

#include "engine/core/backend.h"
#include "engine/core/sampler.h"
#include "engine/cpu/query_capture.h"
#include "engine/cpu/thread_pool.h"
#include "engine/kv/dms_kv_cache.h"
#include "engine/model/checkpoint.h"

namespace dms {

struct CpuBackendOptions {
  int num_threads = 0;            // 0: all hardware threads
  int kv_block_size = 16;         // token slots per KV block
  int64_t kv_cache_bytes = 1LL << 30;  // pool size when kv_num_blocks is 0
  int kv_num_blocks = 0;          // explicit pool size in blocks
  bool force_dense = false;       // --kv-policy dense: ignore DMS decisions
};

class CpuBackend : public Backend {
 public:
  static StatusOr<std::unique_ptr<CpuBackend>> Create(std::shared_ptr<const Checkpoint> checkpoint,
                                                      const CpuBackendOptions& options);
  ~CpuBackend() override;

  const ModelConfig& config() const override { return checkpoint_->config(); }
  BackendInfo info() const override;
  StatusOr<SeqId> CreateSequence() override;
  void ReleaseSequence(SeqId seq) override;
  int KvBlocksNeeded(SeqId seq, int num_new_tokens) const override;
  using Backend::Forward;
  Status Forward(std::span<const ForwardChunk> batch, ForwardResult* out) override;
  Status SetTokenHistory(SeqId seq, std::span<const int32_t> prompt,
                         std::span<const int32_t> output) override;
  SequenceKvStats SequenceStats(SeqId seq) const override;
  int SequenceBlocks(SeqId seq) const override { return cache_->blocks().NumBlocks(seq); }
  void AddLayerStats(SeqId seq, std::span<int64_t> retained,
                     std::span<int64_t> logical) const override {
    cache_->blocks().AddLayerStats(seq, retained, logical);
  }
  KvPoolStats PoolStats() const override;
  // Training-free KV policies (cpu_kv_policy.cc).
  Status SetKvCapture(SeqId seq, const KvCaptureSpec& spec) override;
  Status ScoreKvLayer(SeqId seq, int layer, const KvPolicySpec& spec,
                      std::vector<KvHeadScores>* out) override;
  Status CompactKv(SeqId seq, int layer, std::span<const std::vector<int32_t>> kept_slots) override;

 private:
  struct LayerParams;  // fp32 copies of the small per-layer vectors

  CpuBackend(std::shared_ptr<const Checkpoint> checkpoint, const CpuBackendOptions& options);
  Status Validate(std::span<const ForwardChunk> batch) const;
  void RunLayer(int layer, std::span<const ForwardChunk> batch);
  // Called by RunLayer for sequences with a capture: statistics of the
  // pre-RoPE queries, and the last queries after RoPE (s_.q, rows in batch order).
  void CaptureQueryStats(int layer, std::span<const ForwardChunk> batch);
  void CaptureLastQueries(int layer, std::span<const ForwardChunk> batch);

  std::shared_ptr<const Checkpoint> checkpoint_;
  CpuBackendOptions options_;
  int window_;  // W, or kDenseWindow
  ThreadPool pool_;
  std::unique_ptr<DmsKvCache> cache_;
  std::vector<LayerParams> layers_;
  std::vector<float> final_norm_;
  std::vector<double> inv_freq_;
  std::unordered_map<SeqId, std::unique_ptr<CpuQueryCapture>> captures_;  // SetKvCapture
  std::unordered_map<SeqId, TokenHistory> histories_;                     // SetTokenHistory
  SampleScratch sample_scratch_;

  // Step scratch, sized to the largest step seen (grows, never shrinks).
  struct Scratch {
    std::vector<float> x, h, q, k, v, attn, tmp, gate, up, alpha;
    std::vector<float> logits;  // [logit rows, vocab], all rows (FinishForwardResult)
    std::vector<uint8_t> decisions;
    std::vector<int32_t> positions;
  } s_;
};

}  // namespace dms
