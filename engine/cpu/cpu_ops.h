// Elementwise and row-wise operators of the Qwen3 forward on the CPU (fp32).
#pragma once

#include <cstdint>
#include <vector>

#include "engine/cpu/thread_pool.h"
#include "engine/model/safetensors.h"

namespace dms {

// Whole tensor as float32 (for small vectors: norms, biases).
std::vector<float> TensorToFloat(const TensorView& t);

// out[r, :] = x[r, :] / sqrt(mean(x[r, :]^2) + eps) * weight; rows of `dim`.
// x and out may alias.
void RmsNormRows(ThreadPool& pool, const float* x, int64_t rows, int64_t dim,
                 const float* weight, double eps, float* out);

// RMSNorm over each head of a [rows, heads, head_dim] tensor, in place.
void RmsNormHeads(ThreadPool& pool, float* x, int64_t rows, int heads, int head_dim,
                  const float* weight, double eps);

// Rotary embedding (rotate-half convention) of x: [rows, heads, head_dim] in
// place; row r is at position positions[r]. inv_freq: [head_dim / 2].
void ApplyRope(ThreadPool& pool, float* x, int64_t rows, int heads, int head_dim,
               const int32_t* positions, const std::vector<double>& inv_freq);

// inv_freq[i] = theta^(-2i / head_dim), i < head_dim / 2.
std::vector<double> RopeInvFreq(double theta, int head_dim);

// gate[i] = silu(gate[i]) * up[i] over n elements (in place into gate).
void SiluMul(ThreadPool& pool, float* gate, const float* up, int64_t n);

// x[i] += y[i].
void AddInPlace(ThreadPool& pool, float* x, const float* y, int64_t n);

}  // namespace dms
