// Backend: the one interface every compute backend implements (CPU reference
// now, CUDA later) with identical arguments and semantics.
//
// A step forwards a BATCH of sequences; each contributes a chunk of new tokens
// (a prefill chunk of any length, or one decode token) at the positions that
// follow what the sequence already holds. Every layer appends the chunk's K/V
// and DMS decisions to that sequence's cache (evicting per spec section 3-4),
// and the step returns logits for the last `num_logits` positions of each
// chunk. Chunking never changes results: feeding a sequence in one prefill or
// in any split of prefills and decodes gives the same logits (within float
// tolerance).
//
// Threading: a Backend is owned and driven by one thread (the engine thread).
// It may use worker threads internally.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/core/sampling_params.h"
#include "engine/kv/kv_types.h"
#include "engine/model/model_config.h"
#include "engine/policies/kv_policy.h"
#include "common/status.h"

namespace dms {

// A token drawn from a logit row, with the model's logprobs (raw logits).
struct SampledToken {
  int32_t id = -1;
  float logprob = 0;                           // log p(id) under the raw logits
  std::vector<std::pair<int32_t, float>> top;  // top-n (id, logprob), most likely first
};

// Sampling a backend does itself (BackendInfo::sampling) for a chunk's last
// logit row: SampleRow (engine/core/sampler.h) with these parameters, the
// draw `uniform` and the sequence's token history (SetTokenHistory, then
// every token the backend samples for it).
struct RowSampling {
  SamplingParams params;
  double uniform = 0;
};

struct ForwardChunk {
  SeqId seq = -1;
  std::span<const int32_t> tokens;  // [n] new token ids, n >= 1
  int num_logits = 1;               // logits for the last num_logits positions (0..n)
  // false: the step returns only the LogitSummary of this chunk's rows, not
  // the rows themselves (a greedy request needs no more; a decode step then
  // copies a few bytes per sequence to the host instead of a vocabulary row).
  bool full_logits = true;
  // Non-null (num_logits 1, full_logits false): the backend samples the row
  // into ForwardResult::sampled; only the token crosses to the host.
  const RowSampling* sampling = nullptr;
};

// What greedy sampling and its reported logprob need of a logit row: the
// first index of the largest logit and log(sum(exp(row))), computed as
// SummarizeLogits (engine/core/sampler.h) does.
struct LogitSummary {
  int32_t argmax = -1;
  float max_logit = 0;
  double log_sum_exp = 0;
};

// One step's logits. `summaries` has one entry per logit row of the batch
// (rows in batch order, within a chunk in position order); `logits` holds
// [rows of the chunks with full_logits, vocab] float32, in the same order.
struct ForwardResult {
  std::vector<float> logits;
  std::vector<LogitSummary> summaries;
  std::vector<SampledToken> sampled;  // one per logit row; set for rows of chunks with sampling
};

struct BackendInfo {
  std::string name;           // "cpu", "cuda"
  std::string device;         // e.g. "2 threads" or "NVIDIA H100 80GB HBM3"
  int kv_block_size = 0;
  int kv_num_blocks = 0;
  int64_t kv_bytes_per_block = 0;
  // Memory plan, allocated once at start (CPU: weights are mmapped).
  int64_t weights_bytes = 0;
  int64_t kv_pool_bytes = 0;   // blocks plus page tables and rings
  int64_t workspace_bytes = 0; // activations and scratch for the largest step
  // KV policies: whether the cache evicts by the checkpoint's DMS decisions
  // (then training-free policies are refused), and whether the backend
  // implements SetKvCapture / ScoreKvLayer / CompactKv.
  bool dms_eviction = false;
  bool kv_policies = false;
  // Whether Forward honours ForwardChunk::sampling (and SetTokenHistory).
  bool sampling = false;
  // The performance switches in force, key=value,... ("" when the backend
  // has none: CPU).
  std::string tuning;
};

// Device memory as the backend sees it (GPU memory on CUDA).
struct DeviceMemoryInfo {
  bool available = false;  // false: the backend has no device memory to report (CPU)
  std::string device;      // e.g. "cuda:0 NVIDIA H200"
  int64_t used = 0;        // bytes in use on the device (all processes)
  int64_t total = 0;
  int64_t peak = 0;        // highest `used` this backend observed
};

class Backend {
 public:
  virtual ~Backend() = default;

  virtual const ModelConfig& config() const = 0;
  virtual BackendInfo info() const = 0;

  // A new, empty sequence in the cache.
  virtual StatusOr<SeqId> CreateSequence() = 0;
  // Frees the sequence's cache blocks. Unknown ids are ignored.
  virtual void ReleaseSequence(SeqId seq) = 0;

  // Blocks that forwarding `num_new_tokens` more tokens of `seq` may need
  // (worst case, nothing evicted), for admission control.
  virtual int KvBlocksNeeded(SeqId seq, int num_new_tokens) const = 0;

  // Runs one step over `batch` (distinct sequences) and fills *out (see
  // ForwardResult; its vectors' capacity is reused).
  // Errors: INVALID_ARGUMENT (bad token id, unknown sequence, empty chunk,
  // position past max_position_embeddings), RESOURCE_EXHAUSTED (KV pool full;
  // nothing of the step is applied).
  virtual Status Forward(std::span<const ForwardChunk> batch, ForwardResult* out) = 0;
  // The same step returning every logit row in full, for tools and tests:
  // `logits` holds [sum of num_logits, vocab] float32, row-major, rows in
  // batch order and, within a chunk, in position order. Every chunk must
  // have full_logits.
  Status Forward(std::span<const ForwardChunk> batch, std::vector<float>* logits);

  // The history the penalties of `seq`'s sampled rows see: prompt tokens and
  // the output so far (called before its first sampled step, and again when
  // a preempted request restarts). Tokens the backend samples for `seq` are
  // added to it. Backends without sampling answer UNIMPLEMENTED.
  virtual Status SetTokenHistory(SeqId seq, std::span<const int32_t> prompt,
                                 std::span<const int32_t> output) {
    return UnimplementedError(info().name + " backend: sampling is not implemented");
  }

  virtual SequenceKvStats SequenceStats(SeqId seq) const = 0;
  // Adds `seq`'s retained entries per layer (summed over KV heads) into
  // retained[layer] and its logical tokens times the KV heads into
  // logical[layer]: the engine's per-step metrics, without allocating where
  // the backend overrides it.
  // SequenceStats(seq).blocks, without allocating where overridden.
  virtual int SequenceBlocks(SeqId seq) const { return SequenceStats(seq).blocks; }
  virtual void AddLayerStats(SeqId seq, std::span<int64_t> retained,
                             std::span<int64_t> logical) const {
    const SequenceKvStats kv = SequenceStats(seq);
    for (size_t l = 0; l < kv.retained.size() && l < retained.size(); ++l) {
      for (int r : kv.retained[l]) retained[l] += r;
      if (l < logical.size()) logical[l] += static_cast<int64_t>(kv.logical_tokens) * kv.retained[l].size();
    }
  }
  virtual KvPoolStats PoolStats() const = 0;
  // Cheap, no synchronisation with running work; the engine polls it now and then.
  virtual DeviceMemoryInfo DeviceMemory() const { return {}; }

  // ---- Training-free KV policies (engine/policies, docs/kv-policies.md).
  // The engine drives them: SetKvCapture before a sequence's first Forward,
  // then, once its prompt is in the cache, per layer ScoreKvLayer, the shared
  // selection SelectKeptSlots, and CompactKv; finally SetKvCapture({}).
  // Only a dense cache (no DMS eviction) can be compacted. The defaults
  // answer UNIMPLEMENTED (BackendInfo::kv_policies is false).

  // Records, in later Forwards of `seq`, what the policy's scores need (the
  // last queries, query statistics); an empty spec stops and frees it.
  virtual Status SetKvCapture(SeqId seq, const KvCaptureSpec& spec) {
    return UnimplementedError(info().name + " backend: KV policies are not implemented");
  }
  // Scores every cached entry of `layer` of `seq` for `spec` (kv_scores.h),
  // one KvHeadScores per KV head, entries in slot order with their positions.
  // FAILED_PRECONDITION when the capture the policy needs was not set.
  virtual Status ScoreKvLayer(SeqId seq, int layer, const KvPolicySpec& spec,
                              std::vector<KvHeadScores>* out) {
    return UnimplementedError(info().name + " backend: KV policies are not implemented");
  }
  // Keeps only `kept_slots[h]` (ascending slot indices) of every KV head of
  // `layer`, compacted to slots [0, kept) in the same order; frees the blocks
  // no longer needed. INVALID_ARGUMENT for bad slot lists (nothing changed).
  virtual Status CompactKv(SeqId seq, int layer, std::span<const std::vector<int32_t>> kept_slots) {
    return UnimplementedError(info().name + " backend: KV policies are not implemented");
  }
};

}  // namespace dms
