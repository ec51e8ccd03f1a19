// Row-wise and elementwise kernels of the Qwen3 forward on the GPU. Each
// launcher enqueues on `stream` and returns the launch error (cudaSuccess when
// the launch was accepted).
#pragma once

#include <cstdint>

#include "kernels/kernel_types.h"

namespace dms::cuda {

// x[r, :] = float(table[tokens[r], :]);  table: [vocab, dim] bf16, x: [rows, dim] f32.
cudaError_t LaunchEmbeddingGather(const int32_t* tokens, int rows, const __nv_bfloat16* table,
                                  int dim, float* x, cudaStream_t stream);

// Residual add fused with RMSNorm, written as GEMM input. For output row r
// (source row s = row_map ? row_map[r] : r):
//   v = x[s] + (delta ? delta[s] : 0) + (bias ? bias : 0)
//   if x_out: x_out[s] = v                       (the residual stream, may be x)
//   out[r] = v / sqrt(mean(v^2) + eps) * weight  (as hi [+ lo], row stride dim)
// x, delta, x_out: [*, dim] f32; weight, bias: [dim] f32.
cudaError_t LaunchRmsNorm(const float* x, const float* delta, const float* bias, float* x_out,
                          const int32_t* row_map, int rows, int dim, const float* weight,
                          float eps, GemmInput out, cudaStream_t stream);

// out[r, i] = silu(gu[r, i]) * gu[r, inter + i];  gu: [rows, 2 * inter] f32.
cudaError_t LaunchSwiGlu(const float* gate_up, int rows, int inter, GemmInput out,
                         cudaStream_t stream);
// The same over bf16 gate;up values (a prefill GEMM's bf16 output: half the
// bytes to read), the same bits as the f32 launch over those values.
cudaError_t LaunchSwiGlu(const __nv_bfloat16* gate_up, int rows, int inter, GemmInput out,
                         cudaStream_t stream);

// Moves rows rows[0..count) of data (row_bytes each, a multiple of 16, and
// data 16-byte aligned) to rows 0..count, in place: row i = old row rows[i].
// rows must be strictly increasing (row i's source is then never an earlier
// destination). One block, rows in order: for the few rows whose logits a
// step asks for (the last layer's MLP runs on them alone). A copy: bit-exact.
cudaError_t LaunchGatherRowsToFront(void* data, int64_t row_bytes, const int32_t* rows, int count,
                                    cudaStream_t stream);

// out[i] = x[i] as GEMM input, over n elements.
cudaError_t LaunchToGemmInput(const float* x, int64_t n, GemmInput out, cudaStream_t stream);

}  // namespace dms::cuda
