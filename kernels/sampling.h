// Sampling on the device. Greedy: the index of the largest logit per row, the
// lowest index on ties, NaN never chosen (as std::max_element over the row,
// for rows without NaN). The row summary gives the host sampler what greedy
// decoding needs (engine/core/sampler.h SummarizeLogits is the reference),
// so a step copies 16 bytes per greedy row to the host instead of the row.
#pragma once

#include <cstdint>

#include "kernels/kernel_types.h"

namespace dms::cuda {

// out[r] = argmax(logits[r, :vocab]);  logits: [rows, vocab] f32.
cudaError_t LaunchGreedyArgmax(const float* logits, int rows, int vocab, int32_t* out,
                               cudaStream_t stream);

// Field for field the host's dms::LogitSummary (engine/core/backend.h).
struct LogitRowSummary {
  int32_t argmax;
  float max_logit;
  double log_sum_exp;  // log(sum(exp(row - max_logit))) + max_logit
};

// Device scratch LaunchLogitSummary needs for `rows` rows of `vocab` logits.
size_t LogitSummaryScratchBytes(int rows, int vocab);

// out[r] = summary of logits[r, :vocab];  logits: [rows, vocab] f32.
// scratch: LogitSummaryScratchBytes(rows, vocab) bytes of device memory.
cudaError_t LaunchLogitSummary(const float* logits, int rows, int vocab, void* scratch,
                               LogitRowSummary* out, cudaStream_t stream);

}  // namespace dms::cuda
