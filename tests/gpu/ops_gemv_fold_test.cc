// The decode RMSNorm folded into the GEMVs around it (kernels/gemv.h,
// RmsNormFold / RmsNormScale) against the CPU and against the unfolded chain
// GEMV -> RMSNorm (+ residual, bias) -> GEMV it replaces.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "kernels/elementwise.h"
#include "kernels/gemv.h"
#include "kernels/launch.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace dms::gpu_testing {
namespace {

std::vector<float> Rows(const std::vector<float>& v, size_t width, int rows) {
  return std::vector<float>(v.begin(), v.begin() + width * rows);
}

// One producer -> consumer pair: o_proj-like producer (k_in -> n) with the
// fold, then a consumer GEMV (n -> n_out) or gate;up + SwiGLU (n -> inter).
struct FoldShape {
  int m, k_in, n, n_out;
  bool swiglu, bias;
};

struct FoldRun {
  std::vector<float> residual, normed, normed_hi, partials, y;
};

class FoldCase {
 public:
  FoldCase(const FoldShape& s, std::mt19937_64& rng) : s_(s) {
    const size_t mk = static_cast<size_t>(s.m) * s.k_in, mn = static_cast<size_t>(s.m) * s.n;
    x_in_ = RandomUniform(mk, rng);
    residual_ = RandomUniform(mn, rng, -3.0f, 3.0f);
    bias_ = RandomUniform(s.n, rng, -0.5f, 0.5f);
    g_ = RandomUniform(s.n, rng, 0.5f, 1.5f);
    w_o_ = ToBf16(RandomUniform(static_cast<size_t>(s.n) * s.k_in, rng, -0.05f, 0.05f));
    const int cons_rows = s.swiglu ? 2 * s.n_out : s.n_out;
    w_c_ = ToBf16(RandomUniform(static_cast<size_t>(cons_rows) * s.n, rng, -0.05f, 0.05f));
    d_x_in_.Upload(x_in_);
    d_bias_.Upload(bias_);
    d_g_.Upload(g_);
    d_w_o_.Upload(w_o_);
    d_w_c_.Upload(w_c_);
  }

  // The first `m` rows of the case through the folded pair.
  FoldRun Folded(int m, bool accurate) {
    const size_t mn = static_cast<size_t>(m) * s_.n, out_n = static_cast<size_t>(m) * s_.n_out;
    DevArray<__nv_bfloat16> in_hi(static_cast<size_t>(m) * s_.k_in), in_lo(in_hi.size());
    DevArray<__nv_bfloat16> n_hi(mn), n_lo(mn), y_hi(out_n), y_lo(out_n);
    DevArray<float> d_res, d_part(static_cast<size_t>(m) * (s_.n / cuda::kGemvColumnsPerPartial)),
        d_y(out_n);
    d_res.Upload(Rows(residual_, s_.n, m));
    DevArray<float> d_x;
    d_x.Upload(Rows(x_in_, s_.k_in, m));
    const cuda::GemmInput in{in_hi.get(), accurate ? in_lo.get() : nullptr};
    EXPECT_EQ(cuda::LaunchToGemmInput(d_x.get(), static_cast<int64_t>(in_hi.size()), in, nullptr), cudaSuccess);
    const cuda::GemmInput normed{n_hi.get(), accurate ? n_lo.get() : nullptr};
    const cuda::RmsNormFold fold{d_res.get(), s_.bias ? d_bias_.get() : nullptr, d_g_.get(), normed,
                                 d_part.get()};
    EXPECT_EQ(cuda::LaunchGemvResidualNorm(in, m, s_.k_in, d_w_o_.get(), s_.n, fold, nullptr),
              cudaSuccess);
    const cuda::RmsNormScale scale{d_part.get(), kEps};
    const cuda::GemmInput act{y_hi.get(), accurate ? y_lo.get() : nullptr};
    FoldRun r;
    if (s_.swiglu) {
      EXPECT_EQ(cuda::LaunchGemvSwiGlu(normed, m, s_.n, d_w_c_.get(), s_.n_out, act, nullptr, &scale),
                cudaSuccess);
      r.y = GemmValue(y_hi, accurate ? &y_lo : nullptr);
    } else {
      EXPECT_EQ(cuda::LaunchGemv(normed, m, s_.n, d_w_c_.get(), s_.n_out, d_y.get(), nullptr, &scale),
                cudaSuccess);
      r.y = d_y.Download();
    }
    r.residual = d_res.Download();
    r.normed = GemmValue(n_hi, accurate ? &n_lo : nullptr);
    r.normed_hi = FromBf16(n_hi.Download());
    r.partials = d_part.Download();
    return r;
  }

  // The chain the fold replaces: GEMV into delta, RMSNorm with the residual
  // add into a GEMM input, the consumer GEMV.
  FoldRun Unfolded(bool accurate) {
    const int m = s_.m;
    const size_t mn = static_cast<size_t>(m) * s_.n, out_n = static_cast<size_t>(m) * s_.n_out;
    DevArray<__nv_bfloat16> in_hi(x_in_.size()), in_lo(x_in_.size()), n_hi(mn), n_lo(mn),
        y_hi(out_n), y_lo(out_n);
    DevArray<float> d_res, d_delta(mn), d_y(out_n), d_gu(2 * out_n);
    d_res.Upload(residual_);
    const cuda::GemmInput in{in_hi.get(), accurate ? in_lo.get() : nullptr};
    EXPECT_EQ(cuda::LaunchToGemmInput(d_x_in_.get(), static_cast<int64_t>(x_in_.size()), in, nullptr),
              cudaSuccess);
    EXPECT_EQ(cuda::LaunchGemv(in, m, s_.k_in, d_w_o_.get(), s_.n, d_delta.get(), nullptr), cudaSuccess);
    const cuda::GemmInput normed{n_hi.get(), accurate ? n_lo.get() : nullptr};
    EXPECT_EQ(cuda::LaunchRmsNorm(d_res.get(), d_delta.get(), s_.bias ? d_bias_.get() : nullptr,
                                  d_res.get(), nullptr, m, s_.n, d_g_.get(), kEps, normed, nullptr),
              cudaSuccess);
    FoldRun r;
    if (s_.swiglu) {
      const cuda::GemmInput act{y_hi.get(), accurate ? y_lo.get() : nullptr};
      EXPECT_EQ(cuda::LaunchGemvSwiGlu(normed, m, s_.n, d_w_c_.get(), s_.n_out, act, nullptr), cudaSuccess);
      r.y = GemmValue(y_hi, accurate ? &y_lo : nullptr);
    } else {
      EXPECT_EQ(cuda::LaunchGemv(normed, m, s_.n, d_w_c_.get(), s_.n_out, d_y.get(), nullptr), cudaSuccess);
      r.y = d_y.Download();
    }
    r.residual = d_res.Download();
    return r;
  }

  // CPU: the consumer on the folded run's own GEMM input and partials, in
  // double: inv * (normed · w), then silu(g) * u for gate;up.
  std::vector<float> CpuConsumer(const FoldRun& f) const {
    const int parts = s_.n / cuda::kGemvColumnsPerPartial;
    std::vector<float> ref(static_cast<size_t>(s_.m) * s_.n_out);
    for (int r = 0; r < s_.m; ++r) {
      double ss = 0;
      for (int j = 0; j < parts; ++j) ss += f.partials[static_cast<size_t>(r) * parts + j];
      const double inv = 1.0 / std::sqrt(ss / s_.n + kEps);
      const float* xr = f.normed.data() + static_cast<size_t>(r) * s_.n;
      auto dot = [&](int row) {
        double acc = 0;
        for (int c = 0; c < s_.n; ++c) acc += xr[c] * static_cast<double>(FromBf16(w_c_[static_cast<size_t>(row) * s_.n + c]));
        return acc * inv;
      };
      for (int o = 0; o < s_.n_out; ++o) {
        double v = dot(o);
        if (s_.swiglu) v = v / (1 + std::exp(-v)) * dot(s_.n_out + o);
        ref[static_cast<size_t>(r) * s_.n_out + o] = static_cast<float>(v);
      }
    }
    return ref;
  }

  float g(int i) const { return g_[i]; }
  const FoldShape& shape() const { return s_; }
  static constexpr float kEps = 1e-6f;

 private:
  FoldShape s_;
  std::vector<float> x_in_, residual_, bias_, g_;
  std::vector<__nv_bfloat16> w_o_, w_c_;
  DevArray<float> d_x_in_, d_bias_, d_g_;
  DevArray<__nv_bfloat16> d_w_o_, d_w_c_;
};

// Swept shapes, bf16 and hi + lo GEMM inputs: the residual bit for bit the
// unfolded chain's; h * g and the partial sums of squares bit for bit the CPU
// on the same h; the consumer close to the CPU on the same input and to the
// unfolded chain within a bf16 rounding; each row independent of m.
TEST(GemmOp, FoldedRmsNormMatchesTheCpuAndTheUnfoldedChain) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(21);
  // Consumer widths off the 4-row blocking (77, 515, 1030) and k below and
  // at the GEMVs' preloading path (k >= 4096).
  for (const FoldShape& s : {FoldShape{1, 4096, 4096, 6144, false, false},
                             FoldShape{4, 4096, 4096, 1030, true, false},
                             FoldShape{3, 96, 256, 77, false, true}, FoldShape{2, 12288, 512, 515, false, false},
                             FoldShape{4, 64, 16, 9, true, true}, FoldShape{2, 1024, 1024, 2048, true, true}}) {
    FoldCase c(s, rng);
    const int parts = s.n / cuda::kGemvColumnsPerPartial;
    for (bool accurate : {false, true}) {
      const std::string name = std::to_string(s.m) + "x" + std::to_string(s.k_in) + " -> " +
                               std::to_string(s.n) + " -> " + std::to_string(s.n_out) +
                               (s.swiglu ? " swiglu" : "") + (s.bias ? " bias" : "") +
                               (accurate ? " hi+lo" : " bf16");
      SCOPED_TRACE(name);
      const FoldRun f = c.Folded(s.m, accurate), u = c.Unfolded(accurate);
      EXPECT_TRUE(f.residual == u.residual) << "residual differs from GEMV then RMSNorm";
      // h * g rounded as the GEMM input; sums of squares (0 + 1) + (2 + 3).
      size_t normed_off = 0, partial_off = 0;
      for (int r = 0; r < s.m; ++r) {
        for (int b = 0; b < parts; ++b) {
          float sq[4];
          for (int j = 0; j < 4; ++j) {
            const size_t i = static_cast<size_t>(r) * s.n + b * 4 + j;
            const float h = f.residual[i], hg = h * c.g(b * 4 + j);
            const float hi = RoundBf16(hg);
            const float want = accurate ? hi + RoundBf16(hg - hi) : hi;
            normed_off += f.normed_hi[i] != hi || f.normed[i] != want;
            sq[j] = h * h;
          }
          partial_off += f.partials[static_cast<size_t>(r) * parts + b] != (sq[0] + sq[1]) + (sq[2] + sq[3]);
        }
      }
      EXPECT_EQ(normed_off, 0u) << "h * g off the CPU's rounding";
      EXPECT_EQ(partial_off, 0u) << "partial sums of squares off the CPU's";
      // vs the CPU on the same input: the summation order, and for gate;up
      // the output's rounding (bf16: 2^-9 relative, hi + lo: about 2^-17).
      const ErrorStats cpu = Compare(f.y, c.CpuConsumer(f));
      const double out_rel = !s.swiglu ? 0.0 : accurate ? 0x1p-15 : 0x1p-8;
      EXPECT_TRUE(CheckClose("gemv_fold", name + " vs CPU", cpu, s.swiglu && !accurate ? 2e-5 : 1e-9,
                             1e-4 + out_rel * cpu.max_ref));
      // vs the unfolded chain: its input is rounded after the scale, this
      // one before (each element within 2^-8 relative), and for gate;up both
      // outputs are rounded.
      const ErrorStats unf = Compare(f.y, u.y);
      EXPECT_TRUE(CheckClose("gemv_fold", name + " vs unfolded", unf, accurate ? 1e-9 : 5e-5,
                             accurate ? 1e-4 + 2 * out_rel * unf.max_ref : 0x1p-6 * unf.max_ref));
      if (s.m > 1) {
        const FoldRun one = c.Folded(1, accurate);
        EXPECT_TRUE(one.y == Rows(f.y, s.n_out, 1) && one.residual == Rows(f.residual, s.n, 1) &&
                    one.partials == Rows(f.partials, parts, 1) && one.normed == Rows(f.normed, s.n, 1))
            << "row 0 differs between m = 1 and m = " << s.m;
      }
    }
  }
  // Refused: a producer width off the partial blocking, no partials, no residual.
  DevArray<__nv_bfloat16> buf(64);
  DevArray<float> fbuf(64);
  const cuda::GemmInput in{buf.get(), nullptr};
  const cuda::RmsNormFold ok{fbuf.get(), nullptr, fbuf.get(), in, fbuf.get()};
  EXPECT_EQ(cuda::LaunchGemvResidualNorm(in, 1, 8, buf.get(), 6, ok, nullptr), cudaErrorInvalidValue);
  cuda::RmsNormFold no_partials = ok, no_residual = ok;
  no_partials.partials = nullptr;
  no_residual.residual = nullptr;
  EXPECT_EQ(cuda::LaunchGemvResidualNorm(in, 1, 8, buf.get(), 4, no_partials, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::LaunchGemvResidualNorm(in, 1, 8, buf.get(), 4, no_residual, nullptr), cudaErrorInvalidValue);
  const cuda::RmsNormScale no_scale{nullptr, 1e-6f};
  EXPECT_EQ(cuda::LaunchGemv(in, 1, 8, buf.get(), 4, fbuf.get(), nullptr, &no_scale), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::LaunchGemvResidualNorm(in, 1, 8, buf.get(), 4, ok, nullptr), cudaSuccess);
}

// The folded decode MLP chain on one stream with no host wait in it, as
// programmatic dependent launch runs it on sm_90 (kernels/launch.cuh): down
// GEMV + residual fold, then gate;up GEMV + SwiGLU scaled by the fold's
// partials, 24 times. Bit for bit the same chain synchronised after every
// launch: a consumer reading the partials or h * g before its producer
// finished, or a producer overwriting them while the consumer still reads,
// would differ.
TEST(GemmOp, FoldedDecodeChainWithoutHostWaitsIsTheSynchronisedChain) {
  DMS_SKIP_WITHOUT_GPU();
  cuda::ProgrammaticLaunchScope pdl(true);
  std::mt19937_64 rng(23);
  const int D = 4096, I = 4096, kSteps = 24;  // k = 4096: the GEMVs' preloading path
  DevArray<__nv_bfloat16> d_gu, d_down, act_hi, normed_hi(D);
  d_gu.Upload(ToBf16(RandomUniform(static_cast<size_t>(2) * I * D, rng, -0.03f, 0.03f)));
  d_down.Upload(ToBf16(RandomUniform(static_cast<size_t>(D) * I, rng, -0.03f, 0.03f)));
  const std::vector<__nv_bfloat16> act0 = ToBf16(RandomUniform(I, rng));
  const std::vector<float> x0 = RandomUniform(D, rng, -3.0f, 3.0f);
  DevArray<float> d_g, d_x(D), d_part(D / cuda::kGemvColumnsPerPartial);
  d_g.Upload(RandomUniform(D, rng, 0.5f, 1.5f));
  act_hi.Upload(act0);
  cudaStream_t stream = nullptr;
  DMS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const cuda::GemmInput act{act_hi.get(), nullptr}, normed{normed_hi.get(), nullptr};
  const cuda::RmsNormFold fold{d_x.get(), nullptr, d_g.get(), normed, d_part.get()};
  const cuda::RmsNormScale scale{d_part.get(), 1e-6f};
  auto run = [&](bool sync_each, std::vector<float>* x_out, std::vector<float>* act_out) {
    DMS_CUDA_CHECK(cudaMemcpyAsync(d_x.get(), x0.data(), D * sizeof(float), cudaMemcpyHostToDevice, stream));
    DMS_CUDA_CHECK(cudaMemcpyAsync(act_hi.get(), act0.data(), I * sizeof(__nv_bfloat16),
                                   cudaMemcpyHostToDevice, stream));
    auto after = [&](cudaError_t e) {
      DMS_CUDA_CHECK(e);
      if (sync_each) DMS_CUDA_CHECK(cudaStreamSynchronize(stream));
    };
    for (int step = 0; step < kSteps; ++step) {
      after(cuda::LaunchGemvResidualNorm(act, 1, I, d_down.get(), D, fold, stream));
      after(cuda::LaunchGemvSwiGlu(normed, 1, D, d_gu.get(), I, act, stream, &scale));
    }
    DMS_CUDA_CHECK(cudaStreamSynchronize(stream));
    *x_out = d_x.Download();
    *act_out = FromBf16(act_hi.Download());
  };
  std::vector<float> x_sync, a_sync, x_chain, a_chain;
  run(true, &x_sync, &a_sync);
  for (float v : x_sync) ASSERT_TRUE(std::isfinite(v));
  for (float v : a_sync) ASSERT_TRUE(std::isfinite(v));
  for (int round = 0; round < 3; ++round) {
    run(false, &x_chain, &a_chain);
    EXPECT_TRUE(x_chain == x_sync) << "residual, round " << round;
    EXPECT_TRUE(a_chain == a_sync) << "gate;up output, round " << round;
  }
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace dms::gpu_testing
