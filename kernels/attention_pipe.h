// The software-pipelined DMS prefill attention kernel (attention_pipe.cu):
// the FlashAttention-2 style wgmma kernel with each warpgroup's softmax of
// the next key tile overlapping its O += P V of this one. Same contract as
// LaunchDmsAttentionMma with tiles of at most kAttnWgmmaRows / g tokens;
// bf16 cache, head_dim 128, num_splits 1. Needs an sm_90 device and sm_90a
// code in the binary (the caller checks).
#pragma once

#include <cuda_runtime.h>

#include "kernels/attention.h"

namespace dms::cuda {

cudaError_t LaunchDmsAttentionPipe(const AttentionParams& p, cudaStream_t stream);

}  // namespace dms::cuda
