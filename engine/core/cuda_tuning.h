// CudaTuning: the CUDA backend's performance switches in one options struct
// (no environment variables): set from the command line (dms-server
// --cuda-tuning, dms-cuda-bench --tuning), reported in GetModelInfo and in
// the benchmark output, so a number always says which paths made it.
// Defaults are the fastest measured paths (docs/cuda.md, docs/batch-decode.md);
// the others stay for A/B runs. Every switch changes speed only: results are
// equal within the tolerance the GPU tests hold each path to.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace dms {

struct CudaTuning {
  // Batch-1 decode: the RMSNorms folded into the GEMVs around them.
  bool fold_norms = true;
  // The last layer's o_proj and MLP run on the rows that need logits only.
  bool last_layer_logit_rows = true;
  // Prefill tiles past a chunk's first W + 1 queries walk the list of cached
  // slots they can see instead of every cached slot.
  bool cached_kept_keys = true;
  // The QKV epilogue hands the tensor-core attention q in bf16.
  bool q_bf16 = true;
  // Decode-step attention: simt (the split-K SIMT kernel), streamed (the
  // cp.async decode kernel) or mma (the tensor-core prefill kernel, one
  // token a tile, no split).
  std::string decode_attention = "simt";
  // Prefill tensor-core attention: auto | mma_sync | wgmma | wgmma_ws.
  std::string attention_core = "auto";
  // Programmatic dependent launch, per kernel group (bit i: group i of
  // gemv, norm, epilogue, attention, append, elementwise; kernels/launch.cuh).
  unsigned pdl_groups = ~0u;
};

// "key=value,key=value" applied over the defaults: booleans take
// on/off/true/false/1/0, attention_core one of its names, pdl all, none or
// a '+'-separated list of groups. INVALID_ARGUMENT naming the key or value.
StatusOr<CudaTuning> ParseCudaTuning(std::string_view spec);
// Every key=value in a fixed order (what ParseCudaTuning reads back).
std::string FormatCudaTuning(const CudaTuning& t);

}  // namespace dms
