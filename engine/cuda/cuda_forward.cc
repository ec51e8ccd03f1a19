// CudaBackend's step: the layer loop and the LM head (cuda_backend.h).
#include <algorithm>
#include <cstddef>
#include <cstring>

#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/cuda_status.h"
#include "engine/cuda/cuda_workspace.h"
#include "kernels/attention.h"
#include "kernels/elementwise.h"
#include "kernels/gemv.h"
#include "kernels/kv_append.h"
#include "kernels/qkv_epilogue.h"

namespace dms {

int CudaBackend::PlanSplits(int num_simt_tiles, int num_tokens) const {
  // Split the key range only when the tiles alone leave the GPU idle
  // (decode). The count depends on the step's shape alone, not on the cache
  // lengths, so a captured decode graph stays valid as the caches grow;
  // splits past a head's keys are empty and the merge skips them.
  // As many splits as fill ONE wave of the kernel's blocks, rounded down: a
  // second, partial wave costs a whole split's latency (docs/kernel-history.md).
  const int slots =
      (decode_step_ ? cuda::kAttnDecodeBlocksPerSm : cuda::kAttnSimtBlocksPerSm) * num_sms_;
  const int blocks = num_simt_tiles * config().num_kv_heads;
  if (blocks == 0 || 2 * blocks > slots) return 1;
  int splits = slots / blocks;
  splits = std::min(splits, ws_->split_rows / std::max(1, num_tokens));
  // A partial last round of the merge costs a whole L2 round trip: drop it
  // when it brings few splits (33 -> 32 for Qwen3's g = 4 on 132 SMs: one
  // round instead of two). Fewer splits than that cost more than a round
  // (docs/cuda.md, "Decode split merge").
  const int round = cuda::DmsAttentionMergeRoundSplits(config().num_q_heads / config().num_kv_heads);
  if (splits > round && splits % round <= round / 4) splits -= splits % round;
  return std::max(1, splits);
}

bool CudaBackend::AddsResidualInGemm(int n) const {
  return ws_->gin_lo == nullptr && n > cuda::kGemvMaxRows;
}

bool CudaBackend::FoldNorms(int n) const {
  if (!fold_norms_ || !gemm_.use_gemv() || n > cuda::kGemvMaxRows) return false;
  const ModelConfig& cfg = config();
  const int D = cfg.hidden_size, I = cfg.intermediate_size, hd = cfg.head_dim;
  if (D % (4 * cuda::kGemvColumnsPerPartial) != 0) return false;  // RmsNormScale's float4 loads
  const cuda::GemmInput gin = ws_->gin(), normed = ws_->normed();
  for (int l = 0; l < cfg.num_layers; ++l) {
    const CudaLayerWeights& lw = weights_.layer(l);
    if (!cuda::GemvSupported(normed, n, D, lw.qkv) || !cuda::GemvSupported(gin, n, cfg.num_q_heads * hd, lw.o) ||
        !cuda::GemvSupported(normed, n, D, lw.gate_up) || !cuda::GemvSupported(gin, n, I, lw.down)) {
      return false;
    }
  }
  return true;
}

int CudaBackend::LastLayerRows(int n, int logit_rows) const {
  const ModelConfig& cfg = config();
  const bool fits = logit_rows < n && logit_rows <= kLastLayerMaxRows &&
                    cfg.hidden_size % 4 == 0 && (cfg.num_q_heads * cfg.head_dim) % 8 == 0;
  return compact_last_layer_ && fits && !FoldNorms(n) ? logit_rows : n;
}

Status CudaBackend::RunLayers(int n, int num_chunks, int simt_tiles, int mma_tiles,
                              int num_splits, int last_rows) {
  const ModelConfig& cfg = config();
  const DmsConfig& dms = cfg.dms;
  Workspace& w = *ws_;
  const int D = cfg.hidden_size, I = cfg.intermediate_size, hd = cfg.head_dim;
  const int hq = cfg.num_q_heads, hkv = cfg.num_kv_heads;
  const float eps = static_cast<float>(cfg.rms_norm_eps);
  const cuda::GemmInput gin = w.gin();
  const cuda::KvDeviceView kv = cache_->view();
  // Decode on the GEMV path: every RMSNorm after the first folded into the
  // GEMVs around it (kernels/gemv.h); o_proj and down_proj then update x in
  // place and leave w.normed() and its partials for q;k;v and gate;up.
  const bool fold = FoldNorms(n);
  const cuda::RmsNormScale scale{w.norm_partials, eps};
  const bool adds_in_gemm = AddsResidualInGemm(n);
  w.delta_pending = false;

  DMS_CUDA_RETURN_IF_ERROR(
      cuda::LaunchEmbeddingGather(meta_.d_tokens(), n, weights_.embed(), D, w.x, stream_),
      "embedding");
  for (int l = 0; l < cfg.num_layers; ++l) {
    const CudaLayerWeights& lw = weights_.layer(l);
    // The chunk's K/V join the cache only after its attention (slot reuse).
    auto append = [&]() -> Status {
      cuda::KvAppendParams ap;
      ap.kv = kv;
      ap.layer = l;
      ap.chunks = meta_.d_chunks();
      ap.num_chunks = num_chunks;
      ap.row_chunk = meta_.d_row_chunk();
      ap.num_tokens = n;
      ap.k_new = w.k_new;
      ap.v_new = w.v_new;
      ap.decisions = w.decisions;
      ap.slot_scratch = w.slot_scratch;
      ap.write_slot = w.write_slot;
      DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchKvAppend(ap, stream_), "KV append");
      return OkStatus();
    };
    // The last layer's output is read only at the logit rows: with fewer of
    // them (a prompt's chunks: one row or none), its attention output and x
    // are cut to those rows and o_proj and the MLP run on them alone (Qwen3-8B:
    // 87% of a layer's GEMM work; exact, the other rows are never read).
    const bool cut = l + 1 == cfg.num_layers && last_rows < n;
    if (fold && l > 0) {
      // The previous down_proj GEMV added its output to x and left x * g.
      DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchGemv(w.normed(), n, D, lw.qkv, (hq + 2 * hkv) * hd, w.big,
                                                stream_, &scale),
                               "q;k;v GEMV (folded RMSNorm)");
    } else {
      // x += previous MLP output (if not added yet); h = RMSNorm(x) * input_layernorm
      float* pending = w.delta_pending ? w.delta : nullptr;
      DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchRmsNorm(w.x, pending, nullptr, pending ? w.x : nullptr,
                                                   nullptr, n, D, lw.input_norm, eps, gin, stream_),
                               "input RMSNorm");
      w.delta_pending = false;
      DMS_RETURN_IF_ERROR(gemm_.Run(gin, n, D, lw.qkv, (hq + 2 * hkv) * hd, w.big));
    }

    cuda::QkvEpilogueParams e;
    e.qkv = w.big;
    if (lw.qkv_bias) {
      e.q_bias = lw.qkv_bias;
      e.k_bias = lw.qkv_bias + hq * hd;
      e.v_bias = lw.qkv_bias + (hq + hkv) * hd;
    }
    e.q_norm = lw.q_norm;
    e.k_norm = lw.k_norm;
    e.rope_cos = weights_.rope_cos();
    e.rope_sin = weights_.rope_sin();
    e.positions = meta_.d_positions();
    e.num_tokens = n;
    e.num_q_heads = hq;
    e.num_kv_heads = hkv;
    e.head_dim = hd;
    e.eps = eps;
    if (dms.enabled && dms.separate_alpha) {
      e.mode = cuda::DecisionMode::kProjection;
      DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchDmsAlphaLogits(w.x, n, D, lw.alpha_norm, lw.alpha, hkv,
                                                          eps, w.alpha, stream_),
                               "DMS alpha");
      e.alpha_logits = w.alpha;
    } else if (dms.enabled) {
      e.mode = cuda::DecisionMode::kNeuron;
    }
    e.per_layer = dms.enabled && dms.alpha_per == DmsAlphaPer::kLayer;
    e.decisions_off = !dms.enabled || dms.disable_eviction || window_ == kDenseWindow;
    e.alpha_scale = dms.alpha_scale;
    e.alpha_offset = dms.initial_alpha_offset;
    e.q_out = w.q;
    // A step whose attention runs on the tensor cores alone reads q as bf16
    // (half the bytes to write and read; the kernel rounds it so anyway).
    // The SIMT kernel and the policies' query capture read it in f32.
    const bool q16 = simt_tiles == 0 && mma_tiles > 0 && captures_.empty() && q_bf16_;
    if (q16) e.q_out_bf16 = reinterpret_cast<__nv_bfloat16*>(w.q);
    e.k_out = w.k_new;
    e.v_out = w.v_new;
    e.kv_dtype = kv.dtype;
    e.decisions = w.decisions;
    DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchQkvEpilogue(e, stream_), "QKV epilogue");
    if (trace_sink_) {
      const size_t bytes = static_cast<size_t>(n) * hkv;
      DMS_CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(static_cast<uint8_t*>(host_trace_.get()) + l * bytes, w.decisions,
                          bytes, cudaMemcpyDeviceToHost, stream_),
          "decision trace");
    }
    // Training-free KV policies: the captured sequences' queries (cuda_kv_policy.cc).
    if (!captures_.empty()) DMS_RETURN_IF_ERROR(CaptureQueries(l, e, num_chunks));

    if (cut && last_rows == 0) {
      // No logits (a chunk before a prompt's last): only the K/V are needed.
      DMS_RETURN_IF_ERROR(append());
      continue;
    }

    cuda::AttentionParams a;
    a.q = w.q;
    if (q16) a.q_bf16 = e.q_out_bf16;
    a.k_new = w.k_new;
    a.v_new = w.v_new;
    a.decisions = w.decisions;
    a.chunks = meta_.d_chunks();
    a.num_tokens = n;
    a.num_q_heads = hq;
    a.layer = l;
    a.kv = kv;
    a.out = w.attn;
    a.part_o = w.part_o;
    a.part_ml = w.part_ml;
    a.split_count = w.split_count;
    // Decode (split-K, no tensor-core tiles): the merge writes the o_proj
    // input too. Prefill (tensor-core tiles only, bf16 activations): the
    // kernel writes it instead of the f32 output.
    const bool merge_to_gin = simt_tiles > 0 && num_splits > 1 && mma_tiles == 0;
    const bool mma_to_gin = simt_tiles == 0 && mma_tiles > 0 && gin.lo == nullptr;
    if (simt_tiles > 0) {
      a.tiles = meta_.d_tiles();
      a.num_tiles = simt_tiles;
      a.num_splits = num_splits;
      if (merge_to_gin) a.out_gin = gin;
      DMS_CUDA_RETURN_IF_ERROR(decode_step_ ? cuda::LaunchDmsDecodeAttention(a, stream_)
                                            : cuda::LaunchDmsAttention(a, stream_),
                               "DMS attention");
    }
    // The tensor-core tiles write their own rows of `out`.
    if (mma_tiles > 0) {
      a.tiles = meta_.d_tiles() + simt_tiles;
      a.num_tiles = mma_tiles;
      a.num_splits = 1;
      if (window_ != kDenseWindow) {
        // Sparse walk: each chunk's unmarked keys, so tiles skip the marked
        // keys older than their window without reading them.
        DMS_CUDA_RETURN_IF_ERROR(
            cuda::LaunchDmsKeptKeys(meta_.d_chunks(), num_chunks, hkv, w.decisions, w.kept_index,
                                    w.kept_count, stream_),
            "DMS kept keys");
        a.kept_index = w.kept_index;
        a.kept_count = w.kept_count;
        // ... and the cached slots its later tiles see (not the marked
        // keys the cache holds for the chunk's first W + 1 queries).
        if (cached_kept_keys_) {
          DMS_CUDA_RETURN_IF_ERROR(
              cuda::LaunchDmsCachedKeptKeys(meta_.d_chunks(), num_chunks, kv, l, w.decisions,
                                            w.cache_kept_index, w.cache_tail, stream_),
              "DMS cached kept keys");
          a.cache_kept_index = w.cache_kept_index;
          a.cache_tail = w.cache_tail;
        }
      }
      if (mma_to_gin) a.out_gin = gin;
      DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchDmsAttentionMma(a, stream_), "DMS attention (MMA)");
    }

    if (!merge_to_gin && !mma_to_gin) {
      DMS_CUDA_RETURN_IF_ERROR(
          cuda::LaunchToGemmInput(w.attn, static_cast<int64_t>(n) * hq * hd, gin, stream_),
          "attention output");
    }
    // From here on the layer runs on m rows: all n, or the logit rows
    // moved to the front of the attention output and of x.
    int m = n;
    bool adds = adds_in_gemm;
    if (cut) {
      DMS_RETURN_IF_ERROR(append());
      const int32_t* rows = meta_.d_logit_rows();
      const int64_t attn_bytes = static_cast<int64_t>(hq) * hd * 2;
      DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchGatherRowsToFront(gin.hi, attn_bytes, rows, last_rows, stream_),
                               "last layer rows (attention)");
      if (gin.lo) {
        DMS_CUDA_RETURN_IF_ERROR(
            cuda::LaunchGatherRowsToFront(gin.lo, attn_bytes, rows, last_rows, stream_),
            "last layer rows (attention, lo)");
      }
      DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchGatherRowsToFront(w.x, static_cast<int64_t>(D) * 4, rows,
                                                             last_rows, stream_),
                               "last layer rows (x)");
      m = last_rows;
      adds = AddsResidualInGemm(m);
    }
    if (fold) {
      // x += o_proj(attn) (+ bias), and x * post_attention_layernorm.
      const cuda::RmsNormFold f{w.x, lw.o_bias, lw.post_norm, w.normed(), w.norm_partials};
      DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchGemvResidualNorm(gin, m, hq * hd, lw.o, D, f, stream_),
                               "o_proj GEMV (folded RMSNorm)");
    } else if (adds && lw.o_bias == nullptr) {
      DMS_RETURN_IF_ERROR(gemm_.Run(gin, m, hq * hd, lw.o, D, w.x, /*accumulate=*/true));
    } else {
      DMS_RETURN_IF_ERROR(gemm_.Run(gin, m, hq * hd, lw.o, D, w.delta));
      w.delta_pending = true;
    }
    // Enqueued after o_proj, which does not need the K/V: with programmatic
    // launch a decode step's append runs beside the o_proj GEMV
    // (kernels/kv_append.h).
    if (!cut) DMS_RETURN_IF_ERROR(append());

    // x += o_proj(attn) (+ bias) if not added yet; h2 = RMSNorm(x) * post_attention_layernorm
    if (!fold) {
      float* pending = w.delta_pending ? w.delta : nullptr;
      DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchRmsNorm(w.x, pending, pending ? lw.o_bias : nullptr,
                                                   pending ? w.x : nullptr, nullptr, m, D,
                                                   lw.post_norm, eps, gin, stream_),
                               "post-attention RMSNorm");
      w.delta_pending = false;
    }
    // gate;up and SwiGLU. Its output goes after its input in the GEMM-input
    // buffer when there is room (a fused GEMV pass must not overwrite the
    // rows it still reads) and the step fits one slice, else over it: GEMM
    // slices of w.gate_up_rows rows into w.big, each then the SwiGLU kernel.
    // Output row r fills [r I, (r + 1) I) and input row r [r D, (r + 1) D):
    // with I >= D a slice's output covers only input rows of its own slice
    // or later ones, so the slices run last first; with I < D only rows of
    // its own slice or earlier ones, so first first.
    const size_t x_elems = static_cast<size_t>(m) * D;
    const bool apart = m <= w.gate_up_rows && x_elems + static_cast<size_t>(m) * I <= w.gin_elems;
    const cuda::GemmInput act =
        apart ? cuda::GemmInput{gin.hi + x_elems, gin.lo ? gin.lo + x_elems : nullptr} : gin;
    if (fold) {
      DMS_CUDA_RETURN_IF_ERROR(
          cuda::LaunchGemvSwiGlu(w.normed(), m, D, lw.gate_up, I, act, stream_, &scale),
          "gate;up GEMV (folded RMSNorm)");
    } else if (apart) {
      DMS_RETURN_IF_ERROR(gemm_.RunSwiGlu(gin, m, D, lw.gate_up, I, w.big, act));
    } else {
      auto row = [](const cuda::GemmInput& g, int r, int width) {
        const size_t off = static_cast<size_t>(r) * width;
        return cuda::GemmInput{g.hi + off, g.lo ? g.lo + off : nullptr};
      };
      // bf16 activations: the GEMM writes bf16 gate;up (as the model's own
      // bf16 Linear does), half the bytes for it and the SwiGLU, twice the
      // rows a slice.
      const bool bf16 = gin.lo == nullptr;
      const int slice = bf16 ? std::min(m, 2 * w.gate_up_rows) : w.gate_up_rows;
      const int num_slices = (m + slice - 1) / slice;
      __nv_bfloat16* big16 = reinterpret_cast<__nv_bfloat16*>(w.big);
      for (int i = 0; i < num_slices; ++i) {
        const int r0 = (I >= D ? num_slices - 1 - i : i) * slice;
        const int rows = std::min(slice, m - r0);
        if (bf16) {
          DMS_RETURN_IF_ERROR(gemm_.RunBf16Out(row(gin, r0, D), rows, D, lw.gate_up, 2 * I, big16));
          DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchSwiGlu(big16, rows, I, row(act, r0, I), stream_),
                                   "SwiGLU");
        } else {
          DMS_RETURN_IF_ERROR(gemm_.Run(row(gin, r0, D), rows, D, lw.gate_up, 2 * I, w.big));
          DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchSwiGlu(w.big, rows, I, row(act, r0, I), stream_),
                                   "SwiGLU");
        }
      }
    }
    if (fold && l + 1 < cfg.num_layers) {
      // x += down_proj(act), and x * the next layer's input_layernorm. The
      // last layer's output goes to w.delta for the final norm.
      const cuda::RmsNormFold f{w.x, nullptr, weights_.layer(l + 1).input_norm, w.normed(),
                                w.norm_partials};
      DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchGemvResidualNorm(act, m, I, lw.down, D, f, stream_),
                               "down_proj GEMV (folded RMSNorm)");
    } else if (adds) {
      DMS_RETURN_IF_ERROR(gemm_.Run(act, m, I, lw.down, D, w.x, /*accumulate=*/true));
    } else {
      DMS_RETURN_IF_ERROR(gemm_.Run(act, m, I, lw.down, D, w.delta));
      w.delta_pending = true;
    }
  }
  return OkStatus();
}

Status CudaBackend::EnqueueLogits(int r0, int rows) {
  if (rows <= 0) return OkStatus();
  const ModelConfig& cfg = config();
  Workspace& w = *ws_;
  // Final norm (with the last MLP's residual add) and LM head only on the
  // rows whose logits were asked for: where the last layer ran on them
  // alone (LastLayerRows), they are rows [0, rows) of x and delta.
  const bool cut = last_rows_ < step_rows_;
  const size_t off = cut ? static_cast<size_t>(r0) * cfg.hidden_size : 0;
  const bool pending = cfg.num_layers > 0 && !AddsResidualInGemm(last_rows_);
  DMS_CUDA_RETURN_IF_ERROR(
      cuda::LaunchRmsNorm(w.x + off, pending ? w.delta + off : nullptr, nullptr, nullptr,
                          cut ? nullptr : meta_.d_logit_rows() + r0, rows, cfg.hidden_size,
                          weights_.final_norm(), static_cast<float>(cfg.rms_norm_eps), w.gin(),
                          stream_),
      "final RMSNorm");
  return gemm_.Run(w.gin(), rows, cfg.hidden_size, weights_.lm_head(), cfg.vocab_size, w.logits);
}

Status CudaBackend::ComputeLogits(std::span<const ForwardChunk> batch, int rows, ForwardResult* out) {
  static_assert(sizeof(cuda::LogitRowSummary) == sizeof(LogitSummary) &&
                offsetof(cuda::LogitRowSummary, max_logit) == offsetof(LogitSummary, max_logit) &&
                offsetof(cuda::LogitRowSummary, log_sum_exp) == offsetof(LogitSummary, log_sum_exp));
  const int V = config().vocab_size;
  Workspace& w = *ws_;
  const size_t length_bytes = static_cast<size_t>(options_.max_sequences) *
                              cache_->heads_per_sequence() * sizeof(int32_t);
  // full[r]: logit row r goes to the host in full.
  full_rows_.clear();
  sample_rows_.clear();
  for (const ForwardChunk& c : batch) {
    full_rows_.insert(full_rows_.end(), c.num_logits, c.full_logits);
    sample_rows_.insert(sample_rows_.end(), c.num_logits, SampleRowRequest{c.seq, nullptr});
    if (c.num_logits > 0) sample_rows_.back().sampling = c.sampling;  // the chunk's last row
  }
  out->summaries.resize(rows);
  out->sampled.assign(rows, SampledToken{});
  out->logits.resize(static_cast<size_t>(std::count(full_rows_.begin(), full_rows_.end(), true)) * V);
  float* host_logits = static_cast<float*>(host_logits_.get());
  // w.logit_rows rows per LM-head pass; the first pass is already enqueued.
  int r0 = 0;
  size_t full_out = 0;  // rows already in out->logits
  do {
    const int rc = std::min(w.logit_rows, rows - r0);
    if (r0 > 0) DMS_RETURN_IF_ERROR(EnqueueLogits(r0, rc));
    int full_here = 0;
    bool sampled_here = false;
    if (rc > 0) {
      DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchLogitSummary(w.logits, rc, V, w.summary_scratch, w.summaries, stream_),
                               "logit summaries");
      DMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host_summaries_.get(), w.summaries,
                                               static_cast<size_t>(rc) * sizeof(LogitSummary),
                                               cudaMemcpyDeviceToHost, stream_),
                               "logit summaries copy");
      DMS_ASSIGN_OR_RETURN(sampled_here, sampler_.Enqueue(std::span(sample_rows_).subspan(r0, rc),
                                                          w.logits, w.summaries, stream_));
      // Runs of full rows, one copy each (a decode step's rows are all full
      // or all summarised, so usually one copy or none).
      for (int r = 0; r < rc;) {
        if (!full_rows_[r0 + r]) {
          ++r;
          continue;
        }
        int e = r;
        while (e < rc && full_rows_[r0 + e]) ++e;
        DMS_CUDA_RETURN_IF_ERROR(
            cudaMemcpyAsync(host_logits + static_cast<size_t>(full_here) * V,
                            w.logits + static_cast<size_t>(r) * V,
                            static_cast<size_t>(e - r) * V * sizeof(float), cudaMemcpyDeviceToHost, stream_),
            "logits copy");
        full_here += e - r;
        r = e;
      }
    }
    const bool last = r0 + rc >= rows;
    if (last) {
      DMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host_lengths_.get(), cache_->view().head_len,
                                               length_bytes, cudaMemcpyDeviceToHost, stream_),
                               "KV lengths copy");
    }
    DMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_), "step");
    if (rc > 0) {
      std::memcpy(out->summaries.data() + r0, host_summaries_.get(),
                  static_cast<size_t>(rc) * sizeof(LogitSummary));
      std::memcpy(out->logits.data() + full_out * V, host_logits,
                  static_cast<size_t>(full_here) * V * sizeof(float));
      if (sampled_here)
        sampler_.Collect(std::span(sample_rows_).subspan(r0, rc), out->sampled.data() + r0);
      full_out += full_here;
    }
    r0 += rc;
    if (last) break;
  } while (true);
  return OkStatus();
}

}  // namespace dms
