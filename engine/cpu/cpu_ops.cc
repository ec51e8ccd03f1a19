#include "engine/cpu/cpu_ops.h"

#include <cmath>

#include "engine/cpu/cpu_matmul.h"

namespace dms {

std::vector<float> TensorToFloat(const TensorView& t) {
  std::vector<float> out(t.numel());
  ConvertToFloat(t, 0, t.numel(), out.data());
  return out;
}

void RmsNormRows(ThreadPool& pool, const float* x, int64_t rows, int64_t dim,
                 const float* weight, double eps, float* out) {
  pool.ParallelFor(rows, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      double ss = 0;
      for (int64_t i = 0; i < dim; ++i) ss += static_cast<double>(xr[i]) * xr[i];
      const float inv = static_cast<float>(1.0 / std::sqrt(ss / dim + eps));
      float* o = out + r * dim;
      for (int64_t i = 0; i < dim; ++i) o[i] = xr[i] * inv * weight[i];
    }
  }, 16);
}

void RmsNormHeads(ThreadPool& pool, float* x, int64_t rows, int heads, int head_dim,
                  const float* weight, double eps) {
  RmsNormRows(pool, x, rows * heads, head_dim, weight, eps, x);
}

std::vector<double> RopeInvFreq(double theta, int head_dim) {
  std::vector<double> inv(head_dim / 2);
  for (int i = 0; i < head_dim / 2; ++i) {
    inv[i] = 1.0 / std::pow(theta, (2.0 * i) / head_dim);
  }
  return inv;
}

void ApplyRope(ThreadPool& pool, float* x, int64_t rows, int heads, int head_dim,
               const int32_t* positions, const std::vector<double>& inv_freq) {
  const int half = head_dim / 2;
  pool.ParallelFor(rows, [&](int64_t r0, int64_t r1) {
    std::vector<float> cs(half), sn(half);
    for (int64_t r = r0; r < r1; ++r) {
      for (int i = 0; i < half; ++i) {
        const double angle = positions[r] * inv_freq[i];
        cs[i] = static_cast<float>(std::cos(angle));
        sn[i] = static_cast<float>(std::sin(angle));
      }
      for (int h = 0; h < heads; ++h) {
        float* v = x + (r * heads + h) * head_dim;
        for (int i = 0; i < half; ++i) {
          const float a = v[i], b = v[i + half];
          v[i] = a * cs[i] - b * sn[i];
          v[i + half] = b * cs[i] + a * sn[i];
        }
      }
    }
  }, 8);
}

void SiluMul(ThreadPool& pool, float* gate, const float* up, int64_t n) {
  pool.ParallelFor(n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float g = gate[i];
      gate[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  }, 4096);
}

void AddInPlace(ThreadPool& pool, float* x, const float* y, int64_t n) {
  pool.ParallelFor(n, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) x[i] += y[i];
  }, 4096);
}

}  // namespace dms
