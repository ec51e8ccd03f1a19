// The CUDA backend's step workspace: every activation buffer of one step,
// sized for max_batch_tokens rows, carved from one allocation (cuda_backend.h).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/device_memory.h"
#include "engine/model/model_config.h"
#include "common/status.h"
#include "kernels/kernel_types.h"
#include "kernels/sampling.h"

namespace dms {

struct CudaBackend::Workspace {
  // M = max tokens per step, D = hidden, W = max(D, Hq*hd, I).
  float* x = nullptr;             // [M, D] residual stream
  float* delta = nullptr;         // [M, D] o_proj / down_proj output
  // Host, during RunLayers: delta holds an output not yet added to x.
  bool delta_pending = false;
  __nv_bfloat16* gin_hi = nullptr;  // [M, W] GEMM input
  __nv_bfloat16* gin_lo = nullptr;  // [M, W] accuracy mode only
  size_t gin_elems = 0;             // M * W
  float* big = nullptr;           // [M, (Hq + 2 Hkv) hd] QKV or [gate_up_rows, 2 I] gate;up output
  int gate_up_rows = 0;           // rows of one gate;up GEMM slice (at least 1, at most M)
  float* q = nullptr;             // [M, Hq, hd]
  float* attn = nullptr;          // [M, Hq, hd]
  void* k_new = nullptr;          // [M, Hkv, hd] kv dtype
  void* v_new = nullptr;          // [M, Hkv, hd] kv dtype
  uint8_t* decisions = nullptr;   // [M, Hkv]
  float* alpha = nullptr;         // [M, Hkv] projection-variant logits
  int32_t* slot_scratch = nullptr;  // [M, Hkv]
  int32_t* write_slot = nullptr;    // [M, Hkv]
  int32_t* kept_index = nullptr;    // [M, Hkv] unmarked chunk keys (sparse prefill attention)
  int32_t* kept_count = nullptr;    // [M, Hkv]
  int32_t* cache_kept_index = nullptr;  // [M, Hkv] cached slots later tiles walk (same)
  int32_t* cache_tail = nullptr;        // [M, Hkv, 2] per chunk: {tail_lo, listed}
  float* part_o = nullptr;        // [split_rows, Hq, hd]
  float* part_ml = nullptr;       // [split_rows, Hq, 2]
  int32_t* split_count = nullptr; // [M, Hkv] the attention's split merge counters, zeroed once
  int split_rows = 0;             // token rows x splits the partial buffers hold
  // Decode steps with the RMSNorms folded into the GEMVs (kernels/gemv.h):
  // the producer GEMVs' outputs, K = kGemvMaxRows.
  __nv_bfloat16* normed_hi = nullptr;  // [K, D] h * g, the next GEMV's input
  __nv_bfloat16* normed_lo = nullptr;  // [K, D] accuracy mode only
  float* norm_partials = nullptr;      // [K, D / kGemvColumnsPerPartial]
  float* logits = nullptr;        // [logit_rows, vocab]
  int logit_rows = 0;             // logits computed per LM-head pass
  cuda::LogitRowSummary* summaries = nullptr;  // [logit_rows]
  void* summary_scratch = nullptr;               // cuda::LogitSummaryScratchBytes(logit_rows, vocab)
  Arena arena;

  cuda::GemmInput gin() const { return {gin_hi, gin_lo}; }
  cuda::GemmInput normed() const { return {normed_hi, normed_lo}; }

  Status Allocate(const ModelConfig& cfg, int max_tokens, bool accurate, cuda::KvDType kv_dtype);
};

}  // namespace dms
