// Sampling on the device. Greedy for now: the index of the largest logit per
// row, the lowest index on ties, NaN never chosen (as std::max_element over
// the row, for rows without NaN). Temperature, top-k/p, min-p and penalties
// follow in the issues that move sampling onto the GPU.
#pragma once

#include <cstdint>

#include "kernels/kernel_types.h"

namespace dms::cuda {

// out[r] = argmax(logits[r, :vocab]);  logits: [rows, vocab] f32.
cudaError_t LaunchGreedyArgmax(const float* logits, int rows, int vocab, int32_t* out,
                               cudaStream_t stream);

}  // namespace dms::cuda
