// MatMul on the CPU: y = x · wᵀ (+ bias), fp32 math on bf16/f16/f32 weights.
//
//   x: [m, k] float32 row-major      w: [n, k] (nn.Linear layout), any DType
//   y: [m, n] float32 row-major      bias: [n] or null
//
// Weights are converted to fp32 one panel of columns at a time (never the
// whole matrix), so bf16 checkpoints stay mmapped and memory stays small.
#pragma once

#include <cstdint>

#include "engine/cpu/thread_pool.h"
#include "engine/model/safetensors.h"

namespace dms {

void MatMul(ThreadPool& pool, const float* x, int64_t m, int64_t k, const TensorView& w,
            const float* bias, float* y);

// Same, but only for weight rows [n_begin, n_end): y is [m, n_end - n_begin],
// bias (if any) is [n_end - n_begin].
void MatMulRows(ThreadPool& pool, const float* x, int64_t m, int64_t k, const TensorView& w,
                int64_t n_begin, int64_t n_end, const float* bias, float* y);

// Converts elements [offset, offset + count) of a tensor to float32.
void ConvertToFloat(const TensorView& t, int64_t offset, int64_t count, float* out);

}  // namespace dms
