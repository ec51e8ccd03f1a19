// The warp-specialized DMS prefill attention kernel (attention_ws.cu), the
// tensor-core path LaunchDmsAttentionMma takes on sm_90a at head_dim 128.
// Same contract as LaunchDmsAttentionMma with tiles of at most
// kAttnWgmmaRows / g tokens; bf16 cache, head_dim 128, num_splits 1. Needs
// an sm_90 device and sm_90a code in the binary (the caller checks).
#pragma once

#include <cuda_runtime.h>

#include "kernels/attention.h"

namespace dms::cuda {

cudaError_t LaunchDmsAttentionWs(const AttentionParams& p, cudaStream_t stream);

}  // namespace dms::cuda
