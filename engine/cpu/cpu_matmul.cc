#include "engine/cpu/cpu_matmul.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "common/half.h"

// AVX2/FMA and baseline versions chosen at load time (an ifunc). Not under
// ThreadSanitizer: the ifunc resolver runs before the TSan runtime is up and
// crashes the process at load; the baseline version alone is then built.
#if defined(__SANITIZE_THREAD__)
#define DMS_CPU_CLONES
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DMS_CPU_CLONES
#endif
#endif
#ifndef DMS_CPU_CLONES
#define DMS_CPU_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif

namespace dms {
namespace {

constexpr int kNr = 16;     // columns per micro-tile (two 8-wide vectors)
constexpr int kMr = 4;      // rows of x per micro-tile
constexpr int kPanel = 64;  // columns converted per panel (4 micro-tiles)

typedef float v8 __attribute__((vector_size(32)));

// Converts weight rows [n0, n0+nn) into a transposed, zero-padded panel:
// panel: [kPanel / kNr][k][kNr] float32.
void PackPanel(const TensorView& w, int64_t n0, int64_t nn, int64_t k, float* panel) {
  const int subs = kPanel / kNr;
  std::memset(panel, 0, sizeof(float) * subs * k * kNr);
  thread_local std::vector<float> row;
  row.resize(k);
  for (int64_t j = 0; j < nn; ++j) {
    ConvertToFloat(w, (n0 + j) * k, k, row.data());
    float* dst = panel + (j / kNr) * k * kNr + (j % kNr);
    for (int64_t kk = 0; kk < k; ++kk) dst[kk * kNr] = row[kk];
  }
}

// y[r, 0:16] = x[r, :] · panel_sub for r < mr. Accumulates in registers.
template <int MR>
inline __attribute__((always_inline)) void MicroKernel(const float* x, int64_t ldx, int64_t k,
                                                       const float* sub, float* out /*[MR][16]*/) {
  v8 acc[MR][2];
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = v8{};
  for (int64_t kk = 0; kk < k; ++kk) {
    v8 w0, w1;
    std::memcpy(&w0, sub + kk * kNr, sizeof(v8));
    std::memcpy(&w1, sub + kk * kNr + 8, sizeof(v8));
    for (int r = 0; r < MR; ++r) {
      const float xv = x[r * ldx + kk];
      acc[r][0] += xv * w0;
      acc[r][1] += xv * w1;
    }
  }
  for (int r = 0; r < MR; ++r) {
    std::memcpy(out + r * kNr, &acc[r][0], sizeof(v8));
    std::memcpy(out + r * kNr + 8, &acc[r][1], sizeof(v8));
  }
}

DMS_CPU_CLONES
void PanelTimesX(const float* x, int64_t m, int64_t k, const float* panel, int64_t nn,
                 const float* bias, float* y, int64_t ldy) {
  float tile[kMr * kNr];
  for (int64_t s = 0; s * kNr < nn; ++s) {
    const float* sub = panel + s * k * kNr;
    const int64_t cols = std::min<int64_t>(kNr, nn - s * kNr);
    for (int64_t m0 = 0; m0 < m; m0 += kMr) {
      const int64_t rows = std::min<int64_t>(kMr, m - m0);
      const float* xr = x + m0 * k;
      switch (rows) {
        case 4: MicroKernel<4>(xr, k, k, sub, tile); break;
        case 3: MicroKernel<3>(xr, k, k, sub, tile); break;
        case 2: MicroKernel<2>(xr, k, k, sub, tile); break;
        default: MicroKernel<1>(xr, k, k, sub, tile); break;
      }
      for (int64_t r = 0; r < rows; ++r) {
        float* dst = y + (m0 + r) * ldy + s * kNr;
        for (int64_t c = 0; c < cols; ++c) {
          dst[c] = tile[r * kNr + c] + (bias ? bias[s * kNr + c] : 0.0f);
        }
      }
    }
  }
}

// Decode-sized products (m <= 4): stream each weight row once, converting
// 8 bf16 values at a time in registers, no panel packing (which would write
// as many bytes as it reads). y[r, j] for rows j in [j0, j1).
DMS_CPU_CLONES
void GemvBf16(const float* x, int64_t m, int64_t k, const uint16_t* w, int64_t j0, int64_t j1,
              const float* bias, float* y, int64_t ldy) {
  for (int64_t j = j0; j < j1; ++j) {
    const uint16_t* row = w + j * k;
    v8 acc[kMr] = {};
    int64_t kk = 0;
    for (; kk + 8 <= k; kk += 8) {
      v8 wf;
      for (int e = 0; e < 8; ++e) {
        const uint32_t bits = static_cast<uint32_t>(row[kk + e]) << 16;
        std::memcpy(&wf[e], &bits, 4);
      }
      for (int64_t r = 0; r < m; ++r) {
        v8 xv;
        std::memcpy(&xv, x + r * k + kk, sizeof(v8));
        acc[r] += xv * wf;
      }
    }
    for (int64_t r = 0; r < m; ++r) {
      float sum = 0;
      for (int e = 0; e < 8; ++e) sum += acc[r][e];
      for (int64_t t = kk; t < k; ++t) sum += x[r * k + t] * Bf16ToFloat(row[t]);
      y[r * ldy + (j - j0)] = sum + (bias ? bias[j - j0] : 0.0f);
    }
  }
}

}  // namespace

void ConvertToFloat(const TensorView& t, int64_t offset, int64_t count, float* out) {
  switch (t.dtype) {
    case DType::kF32:
      std::memcpy(out, t.data + offset * 4, sizeof(float) * count);
      break;
    case DType::kBF16: {
      const uint8_t* p = t.data + offset * 2;
      for (int64_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = Bf16ToFloat(h);
      }
      break;
    }
    case DType::kF16: {
      const uint8_t* p = t.data + offset * 2;
      for (int64_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = Fp16ToFloat(h);
      }
      break;
    }
  }
}

void MatMulRows(ThreadPool& pool, const float* x, int64_t m, int64_t k, const TensorView& w,
                int64_t n_begin, int64_t n_end, const float* bias, float* y) {
  const int64_t n = n_end - n_begin;
  if (m <= kMr && w.dtype == DType::kBF16) {
    const uint16_t* wd = reinterpret_cast<const uint16_t*>(w.data);
    pool.ParallelFor(n, [&](int64_t a, int64_t b) {
      GemvBf16(x, m, k, wd, n_begin + a, n_begin + b, bias ? bias + a : nullptr, y + a, n);
    }, 64);
    return;
  }
  const int64_t num_panels = (n + kPanel - 1) / kPanel;
  // Enough panels per task that packing amortises over m rows.
  pool.ParallelFor(num_panels, [&](int64_t p0, int64_t p1) {
    thread_local std::vector<float> panel;
    panel.resize(static_cast<size_t>(kPanel) * k);
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t c0 = p * kPanel;
      const int64_t nn = std::min<int64_t>(kPanel, n - c0);
      PackPanel(w, n_begin + c0, nn, k, panel.data());
      PanelTimesX(x, m, k, panel.data(), nn, bias ? bias + c0 : nullptr, y + c0, n);
    }
  });
}

void MatMul(ThreadPool& pool, const float* x, int64_t m, int64_t k, const TensorView& w,
            const float* bias, float* y) {
  MatMulRows(pool, x, m, k, w, 0, w.shape[0], bias, y);
}

}  // namespace dms
