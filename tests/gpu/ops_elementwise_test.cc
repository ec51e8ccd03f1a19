// Embedding gather, rows moved to the front, RMSNorm (+ residual add, bias,
// row gather), SwiGLU, the GEMM-input split and the cuBLAS linear layer against the CPU reference ops.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "engine/cpu/cpu_matmul.h"
#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/thread_pool.h"
#include "engine/cuda/cublas_linear.h"
#include "engine/model/safetensors.h"
#include "kernels/elementwise.h"
#include "kernels/gemv.h"
#include "kernels/launch.cuh"
#include "tests/gpu/gpu_test_util.h"

namespace dms::gpu_testing {
namespace {

ThreadPool& Pool() {
  static ThreadPool pool(0);
  return pool;
}

TEST(ElementwiseOp, EmbeddingGatherIsExact) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(1);
  for (int dim : {64, 96, 4096}) {
    const int vocab = 1000, rows = 37;
    std::vector<__nv_bfloat16> table = ToBf16(RandomUniform(static_cast<size_t>(vocab) * dim, rng));
    std::vector<int32_t> tokens(rows);
    for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % vocab);
    tokens[0] = vocab - 1;
    DevArray<__nv_bfloat16> d_table;
    d_table.Upload(table);
    DevArray<int32_t> d_tokens;
    d_tokens.Upload(tokens);
    DevArray<float> d_x(static_cast<size_t>(rows) * dim);
    DMS_CUDA_CHECK(cuda::LaunchEmbeddingGather(d_tokens.get(), rows, d_table.get(), dim, d_x.get(), nullptr));
    const std::vector<float> got = d_x.Download();
    bool same = true;
    for (int r = 0; r < rows; ++r) {
      for (int d = 0; d < dim; ++d) {
        same &= got[static_cast<size_t>(r) * dim + d] == FromBf16(table[static_cast<size_t>(tokens[r]) * dim + d]);
      }
    }
    EXPECT_TRUE(same);
    Report("embedding", "rows=37 vocab=1000 dim=" + std::to_string(dim), "bit-exact", same);
  }
}

// The last layer's row cut (cuda_forward.cc): rows moved to the front in
// place, bit for bit against a CPU copy; rows past `count` keep their bytes.
// Row lists: none moved, the last row alone, every other row, runs, and
// 64 rows out of 4096 (the backend's bound).
TEST(ElementwiseOp, GatherRowsToFrontIsExact) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(3);
  struct Shape { int rows, width; std::vector<int32_t> pick; };
  std::vector<int32_t> every_other, sparse64;
  for (int r = 1; r < 300; r += 2) every_other.push_back(r);
  for (int i = 0; i < 64; ++i) sparse64.push_back(i * 64 + static_cast<int>(rng() % 64));
  const std::vector<Shape> shapes = {{16, 4, {0, 1, 2}},         {8192, 1024, {8191}},
                                     {300, 96, every_other},    {50, 2048, {3, 4, 5, 20, 21, 49}},
                                     {4096, 4096, sparse64}};
  for (const Shape& sh : shapes) {
    std::vector<float> x = RandomUniform(static_cast<size_t>(sh.rows) * sh.width, rng);
    DevArray<float> d_x;
    d_x.Upload(x);
    DevArray<int32_t> d_pick;
    d_pick.Upload(sh.pick);
    DMS_CUDA_CHECK(cuda::LaunchGatherRowsToFront(d_x.get(), static_cast<int64_t>(sh.width) * 4,
                                                 d_pick.get(), static_cast<int>(sh.pick.size()),
                                                 nullptr));
    std::vector<float> want = x;
    for (size_t i = 0; i < sh.pick.size(); ++i) {
      std::memcpy(&want[i * sh.width], &x[static_cast<size_t>(sh.pick[i]) * sh.width],
                  static_cast<size_t>(sh.width) * 4);
    }
    const std::vector<float> got = d_x.Download();
    const bool same = std::memcmp(got.data(), want.data(), want.size() * 4) == 0;
    EXPECT_TRUE(same);
    Report("gather_rows_to_front",
           "rows=" + std::to_string(sh.rows) + " width=" + std::to_string(sh.width) +
               " picked=" + std::to_string(sh.pick.size()),
           "bit-exact", same);
  }
  // A row width that is not whole 16-byte pieces is refused.
  DevArray<float> d_x(64);
  DevArray<int32_t> d_pick(1);
  EXPECT_EQ(cuda::LaunchGatherRowsToFront(d_x.get(), 12, d_pick.get(), 1, nullptr),
            cudaErrorInvalidValue);
}

TEST(ElementwiseOp, RmsNormWithResidualMatches) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(2);
  // 70: not a multiple of 4 and 20480: wider than 4 x 1024 float4, both the
  // v1 kernel; the others the register-resident v2.
  for (int dim : {64, 70, 96, 4096, 5120, 20480}) {
    for (int rows : {1, 7, 300}) {
      for (bool accurate : {false, true}) {
        const size_t n = static_cast<size_t>(rows) * dim;
        std::vector<float> x = RandomUniform(n, rng, -3, 3), delta = RandomUniform(n, rng);
        std::vector<float> bias = RandomUniform(dim, rng, -0.1f, 0.1f);
        std::vector<float> w = RandomUniform(dim, rng, 0.5f, 1.5f);
        // Reference: v = (x + delta) + bias, then RMSNorm.
        std::vector<float> v(n), ref(n);
        for (size_t i = 0; i < n; ++i) v[i] = (x[i] + delta[i]) + bias[i % dim];
        RmsNormRows(Pool(), v.data(), rows, dim, w.data(), 1e-6, ref.data());
        DevArray<float> d_x, d_delta, d_bias, d_w;
        d_x.Upload(x);
        d_delta.Upload(delta);
        d_bias.Upload(bias);
        d_w.Upload(w);
        DevArray<__nv_bfloat16> hi(n), lo(n);
        cuda::GemmInput out{hi.get(), accurate ? lo.get() : nullptr};
        DMS_CUDA_CHECK(cuda::LaunchRmsNorm(d_x.get(), d_delta.get(), d_bias.get(), d_x.get(), nullptr,
                                           rows, dim, d_w.get(), 1e-6f, out, nullptr));
        const std::vector<float> x_after = d_x.Download();
        EXPECT_EQ(0, std::memcmp(x_after.data(), v.data(), n * 4)) << "residual stream not exact";
        const ErrorStats e = Compare(GemmValue(hi, accurate ? &lo : nullptr), ref);
        // bf16 output: relative rounding 2^-9; hi + lo: about 2^-17.
        const double bound = accurate ? 1e-9 : 2e-5;
        EXPECT_TRUE(CheckClose("rms_norm_add",
                               "rows=" + std::to_string(rows) + " dim=" + std::to_string(dim) +
                                   (accurate ? " hi+lo" : " bf16"),
                               e, bound, (accurate ? 1e-4 : 4e-2)));
      }
    }
  }
  // Gathered rows (the LM-head path): output row r is source row map[r].
  const int rows = 50, dim = 128;
  std::vector<float> x = RandomUniform(rows * dim, rng), delta = RandomUniform(rows * dim, rng);
  std::vector<float> w = RandomUniform(dim, rng, 0.5f, 1.5f);
  std::vector<int32_t> map = {49, 0, 17, 17, 3};
  std::vector<float> v(map.size() * dim), ref(v.size());
  for (size_t r = 0; r < map.size(); ++r)
    for (int d = 0; d < dim; ++d) v[r * dim + d] = x[map[r] * dim + d] + delta[map[r] * dim + d];
  RmsNormRows(Pool(), v.data(), map.size(), dim, w.data(), 1e-5, ref.data());
  DevArray<float> d_x, d_delta, d_w;
  DevArray<int32_t> d_map;
  d_x.Upload(x);
  d_delta.Upload(delta);
  d_w.Upload(w);
  d_map.Upload(map);
  DevArray<__nv_bfloat16> hi(v.size()), lo(v.size());
  DMS_CUDA_CHECK(cuda::LaunchRmsNorm(d_x.get(), d_delta.get(), nullptr, nullptr, d_map.get(),
                                     static_cast<int>(map.size()), dim, d_w.get(), 1e-5f,
                                     {hi.get(), lo.get()}, nullptr));
  EXPECT_TRUE(CheckClose("rms_norm_add", "gathered rows=5 of 50 dim=128 hi+lo",
                         Compare(GemmValue(hi, &lo), ref), 1e-9, 1e-4));
  EXPECT_EQ(0, std::memcmp(d_x.Download().data(), x.data(), x.size() * 4)) << "x must not change";
}

TEST(ElementwiseOp, SwiGluMatches) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(3);
  for (int inter : {128, 130, 12288}) {  // 130: the scalar kernel (width not a multiple of 4)
    for (int rows : {1, 33}) {
      std::vector<float> gu = RandomUniform(static_cast<size_t>(rows) * 2 * inter, rng, -6, 6);
      std::vector<float> gate(static_cast<size_t>(rows) * inter), up(gate.size());
      for (int r = 0; r < rows; ++r) {
        for (int i = 0; i < inter; ++i) {
          gate[static_cast<size_t>(r) * inter + i] = gu[static_cast<size_t>(r) * 2 * inter + i];
          up[static_cast<size_t>(r) * inter + i] = gu[static_cast<size_t>(r) * 2 * inter + inter + i];
        }
      }
      SiluMul(Pool(), gate.data(), up.data(), gate.size());
      DevArray<float> d_gu;
      d_gu.Upload(gu);
      DevArray<__nv_bfloat16> hi(gate.size()), lo(gate.size());
      DMS_CUDA_CHECK(cuda::LaunchSwiGlu(d_gu.get(), rows, inter, {hi.get(), lo.get()}, nullptr));
      // hi + lo keeps about 17 bits: elementwise error relative to the largest value.
      const ErrorStats e = Compare(GemmValue(hi, &lo), gate);
      EXPECT_TRUE(CheckClose("swiglu", "rows=" + std::to_string(rows) + " inter=" + std::to_string(inter) + " hi+lo",
                             e, 1e-9, 2e-5 * e.max_ref));
      DevArray<__nv_bfloat16> hi2(gate.size());
      DMS_CUDA_CHECK(cuda::LaunchSwiGlu(d_gu.get(), rows, inter, {hi2.get(), nullptr}, nullptr));
      std::vector<float> rounded(gate.size());
      for (size_t i = 0; i < gate.size(); ++i) rounded[i] = RoundBf16(gate[i]);
      const std::vector<float> got = FromBf16(hi2.Download());
      size_t off = 0;
      for (size_t i = 0; i < got.size(); ++i) off += got[i] != rounded[i];
      // expf may differ from std::exp in the last bit, moving a rare value
      // across a bf16 rounding boundary.
      EXPECT_LE(off, got.size() / 1000 + 1);
      Report("swiglu", "rows=" + std::to_string(rows) + " inter=" + std::to_string(inter) + " bf16",
             std::to_string(off) + " of " + std::to_string(got.size()) + " off by 1 ulp", off <= got.size() / 1000 + 1);
    }
  }
}

// The SwiGLU over bf16 gate;up (prefill's bf16 GEMM output): the same bits as
// the f32 kernels over the same values, both output forms, both kernels
// (inter % 8 != 0 takes the scalar one).
TEST(ElementwiseOp, SwiGluOverBf16IsTheF32KernelOverTheSameValues) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(5);
  for (int inter : {128, 132, 12288}) {
    for (int rows : {1, 33}) {
      const std::vector<__nv_bfloat16> gu16 =
          ToBf16(RandomUniform(static_cast<size_t>(rows) * 2 * inter, rng, -6, 6));
      DevArray<__nv_bfloat16> d_gu16;
      d_gu16.Upload(gu16);
      DevArray<float> d_gu;
      d_gu.Upload(FromBf16(gu16));
      for (bool with_lo : {false, true}) {
        const size_t n = static_cast<size_t>(rows) * inter;
        DevArray<__nv_bfloat16> hi(n), lo(n), hi16(n), lo16(n);
        DMS_CUDA_CHECK(cuda::LaunchSwiGlu(d_gu.get(), rows, inter,
                                          {hi.get(), with_lo ? lo.get() : nullptr}, nullptr));
        DMS_CUDA_CHECK(cuda::LaunchSwiGlu(d_gu16.get(), rows, inter,
                                          {hi16.get(), with_lo ? lo16.get() : nullptr}, nullptr));
        auto bits = [](const std::vector<__nv_bfloat16>& v) {
          std::vector<uint16_t> b(v.size());
          std::memcpy(b.data(), v.data(), v.size() * 2);
          return b;
        };
        const bool same = bits(hi.Download()) == bits(hi16.Download()) &&
                          (!with_lo || bits(lo.Download()) == bits(lo16.Download()));
        EXPECT_TRUE(same) << "rows " << rows << " inter " << inter << (with_lo ? " hi+lo" : "");
        Report("swiglu_bf16", "rows=" + std::to_string(rows) + " inter=" + std::to_string(inter) +
                                  (with_lo ? " hi+lo" : " bf16"),
               same ? "bit-exact" : "DIFFERS", same);
      }
    }
  }
}

// The linear layer, both paths: cuBLAS, and the GEMV kernel that takes
// decode-sized m (kernels/gemv.h); shapes off the kernel's row and column
// blocking (n odd, k not a multiple of 256, k % 8 != 0 falls to cuBLAS).
TEST(GemmOp, CublasLinearMatchesCpuMatMul) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(4);
  CublasLinear gemm;
  ASSERT_TRUE(gemm.Init(nullptr).ok());
  struct Shape { int m, k, n; };
  for (const Shape& s : {Shape{1, 64, 192}, Shape{7, 96, 384}, Shape{128, 1024, 3072},
                         Shape{300, 4096, 512}, Shape{1, 4096, 6144}, Shape{2, 96, 77},
                         Shape{3, 12288, 515}, Shape{4, 4104, 1030}, Shape{1, 100, 33},
                         Shape{4, 8, 9}}) {
    const std::vector<float> x = RandomUniform(static_cast<size_t>(s.m) * s.k, rng);
    const std::vector<__nv_bfloat16> w = ToBf16(RandomUniform(static_cast<size_t>(s.n) * s.k, rng, -0.05f, 0.05f));
    TensorView tv;
    tv.name = "w";
    tv.dtype = DType::kBF16;
    tv.shape = {s.n, s.k};
    tv.data = reinterpret_cast<const uint8_t*>(w.data());
    tv.nbytes = w.size() * 2;
    std::vector<float> xr(x.size());
    for (size_t i = 0; i < x.size(); ++i) xr[i] = RoundBf16(x[i]);
    std::vector<float> ref(static_cast<size_t>(s.m) * s.n), ref_r(ref.size());
    MatMul(Pool(), x.data(), s.m, s.k, tv, nullptr, ref.data());
    MatMul(Pool(), xr.data(), s.m, s.k, tv, nullptr, ref_r.data());
    DevArray<__nv_bfloat16> d_w, hi(x.size()), lo(x.size());
    d_w.Upload(w);
    DevArray<float> d_x, d_y(ref.size());
    d_x.Upload(x);
    const std::string shape = std::to_string(s.m) + "x" + std::to_string(s.k) + " by " + std::to_string(s.n);
    for (bool gemv : {false, true}) {
      cuda::GemmInput probe{hi.get(), nullptr};
      if (gemv && !cuda::GemvSupported(probe, s.m, s.k, d_w.get())) continue;
      gemm.set_use_gemv(gemv);
      for (bool accurate : {false, true}) {
        cuda::GemmInput in{hi.get(), accurate ? lo.get() : nullptr};
        DMS_CUDA_CHECK(cuda::LaunchToGemmInput(d_x.get(), static_cast<int64_t>(x.size()), in, nullptr));
        d_y.Poison();
        ASSERT_TRUE(gemm.Run(in, s.m, s.k, d_w.get(), s.n, d_y.get()).ok());
        // bf16 inputs against the CPU on the same rounded inputs (only the
        // summation order differs); hi + lo against the CPU on fp32 inputs.
        const ErrorStats e = Compare(d_y.Download(), accurate ? ref : ref_r);
        EXPECT_TRUE(CheckClose(gemv ? "linear_gemv" : "linear_cublas",
                               shape + (accurate ? " hi+lo vs f32" : " bf16 vs rounded"), e,
                               accurate ? 1e-9 : 1e-10, 1e-4));
        if (gemv || accurate) {
          // The prefill-only forms take one cuBLAS GEMM over bf16 activations.
          EXPECT_EQ(gemm.Run(in, s.m, s.k, d_w.get(), s.n, d_y.get(), true).code(),
                    StatusCode::kInvalidArgument);
          if (accurate) {
            DevArray<__nv_bfloat16> y16(ref.size());
            EXPECT_EQ(gemm.RunBf16Out(in, s.m, s.k, d_w.get(), s.n, y16.get()).code(),
                      StatusCode::kInvalidArgument);
          }
          continue;
        }
        // y += x · wᵀ (a prefill residual add in the GEMM).
        const std::vector<float> base = RandomUniform(ref.size(), rng, -3, 3);
        d_y.Upload(base);
        ASSERT_TRUE(gemm.Run(in, s.m, s.k, d_w.get(), s.n, d_y.get(), true).ok());
        std::vector<float> sum(ref.size());
        for (size_t i = 0; i < sum.size(); ++i) sum[i] = base[i] + ref_r[i];
        EXPECT_TRUE(CheckClose("linear_cublas", shape + " accumulate", Compare(d_y.Download(), sum),
                               1e-10, 1e-4));
        // bf16 output: the fp32 result rounded (one bf16 rounding, ~2^-9).
        DevArray<__nv_bfloat16> y16(ref.size());
        ASSERT_TRUE(gemm.RunBf16Out(in, s.m, s.k, d_w.get(), s.n, y16.get()).ok());
        const ErrorStats e16 = Compare(FromBf16(y16.Download()), ref_r);
        EXPECT_TRUE(CheckClose("linear_cublas", shape + " bf16 out", e16, 2e-5,
                               e16.max_ref / 256 + 1e-6));
      }
    }
    gemm.set_use_gemv(true);
  }
  // What the GEMV kernel refuses: more rows than kGemvMaxRows, k % 8 != 0.
  DevArray<__nv_bfloat16> buf(64);
  EXPECT_FALSE(cuda::GemvSupported({buf.get(), nullptr}, cuda::kGemvMaxRows + 1, 8, buf.get()));
  EXPECT_FALSE(cuda::GemvSupported({buf.get(), nullptr}, 1, 12, buf.get()));
  EXPECT_FALSE(cuda::GemvSupported({buf.get() + 1, nullptr}, 1, 8, buf.get()));
  EXPECT_EQ(cuda::LaunchGemv({buf.get(), nullptr}, 1, 12, buf.get(), 4, nullptr, nullptr),
            cudaErrorInvalidValue);
}

// The decode MLP's fused gate;up GEMV + SwiGLU: bit for bit the GEMV then
// the SwiGLU kernel (same summation order, same formula), and close to the
// CPU (MatMul, then silu(g) * u) on the same rounded inputs.
TEST(GemmOp, GemvSwiGluIsGemvThenSwiGlu) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(9);
  struct Shape { int m, k, inter; };
  for (const Shape& s : {Shape{1, 4096, 1030}, Shape{3, 96, 77}, Shape{4, 1024, 2048}}) {
    const std::vector<float> x = RandomUniform(static_cast<size_t>(s.m) * s.k, rng);
    const std::vector<__nv_bfloat16> w =
        ToBf16(RandomUniform(static_cast<size_t>(2) * s.inter * s.k, rng, -0.05f, 0.05f));
    DevArray<__nv_bfloat16> d_w, hi(x.size()), lo(x.size());
    d_w.Upload(w);
    DevArray<float> d_x, d_gu(static_cast<size_t>(s.m) * 2 * s.inter);
    d_x.Upload(x);
    const size_t out_n = static_cast<size_t>(s.m) * s.inter;
    const std::string shape = std::to_string(s.m) + "x" + std::to_string(s.k) + " inter " +
                              std::to_string(s.inter);
    for (bool accurate : {false, true}) {
      cuda::GemmInput in{hi.get(), accurate ? lo.get() : nullptr};
      DMS_CUDA_CHECK(cuda::LaunchToGemmInput(d_x.get(), static_cast<int64_t>(x.size()), in, nullptr));
      DevArray<__nv_bfloat16> f_hi(out_n), f_lo(out_n), u_hi(out_n), u_lo(out_n);
      cuda::GemmInput fused{f_hi.get(), accurate ? f_lo.get() : nullptr};
      cuda::GemmInput unfused{u_hi.get(), accurate ? u_lo.get() : nullptr};
      DMS_CUDA_CHECK(cuda::LaunchGemvSwiGlu(in, s.m, s.k, d_w.get(), s.inter, fused, nullptr));
      DMS_CUDA_CHECK(cuda::LaunchGemv(in, s.m, s.k, d_w.get(), 2 * s.inter, d_gu.get(), nullptr));
      DMS_CUDA_CHECK(cuda::LaunchSwiGlu(d_gu.get(), s.m, s.inter, unfused, nullptr));
      const std::vector<float> got = GemmValue(f_hi, accurate ? &f_lo : nullptr);
      const bool same = got == GemmValue(u_hi, accurate ? &u_lo : nullptr);
      EXPECT_TRUE(same) << shape;
      // CPU: gate;up on the GEMV's own inputs (hi [+ lo]), then silu(g) * u.
      const std::vector<float> xin = GemmValue(hi, accurate ? &lo : nullptr);
      std::vector<float> ref(out_n);
      for (int r = 0; r < s.m; ++r) {
        for (int i = 0; i < s.inter; ++i) {
          double g = 0, u = 0;
          for (int c = 0; c < s.k; ++c) {
            const double xv = xin[static_cast<size_t>(r) * s.k + c];
            g += xv * FromBf16(w[static_cast<size_t>(i) * s.k + c]);
            u += xv * FromBf16(w[static_cast<size_t>(s.inter + i) * s.k + c]);
          }
          ref[static_cast<size_t>(r) * s.inter + i] = static_cast<float>(g / (1 + std::exp(-g)) * u);
        }
      }
      // Output rounding: bf16 (2^-9 relative) or hi + lo (about 2^-17).
      EXPECT_TRUE(CheckClose("gemv_swiglu", shape + (accurate ? " hi+lo" : " bf16") +
                                                (same ? " (= unfused)" : " (DIFFERS from unfused)"),
                             Compare(got, ref), accurate ? 1e-9 : 2e-5, accurate ? 1e-4 : 2e-2));
    }
  }
  DevArray<__nv_bfloat16> buf(64);
  EXPECT_EQ(cuda::LaunchGemvSwiGlu({buf.get(), nullptr}, 1, 8, buf.get(), 2, {}, nullptr),
            cudaErrorInvalidValue);  // no output
}

// The decode residual chain on one stream with no host wait in it: x +=
// GEMV output, RMSNorm -> GEMV input, gate;up GEMV + SwiGLU, down GEMV. In a
// ProgrammaticLaunchScope on sm_90 these launch with programmatic dependent
// launch (kernels/launch.cuh): a GEMV starts streaming weights before the
// kernel before it has finished and must still read that kernel's output.
// Bit for bit the same chain with the stream synchronised after each launch.
// Two norm widths: the model's (v2 kernel, a few us) and a wide odd one
// (v1, a single block for ~100 us: a GEMV reading its input early would
// read the previous step's).
TEST(GemmOp, DecodeChainWithoutHostWaitsIsTheSynchronisedChain) {
  DMS_SKIP_WITHOUT_GPU();
  cuda::ProgrammaticLaunchScope pdl(true);
  std::printf("programmatic dependent launch: gemv %s, norm %s\n",
              cuda::ProgrammaticLaunchEnabled(cuda::LaunchGroup::kGemv) ? "on" : "off",
              cuda::ProgrammaticLaunchEnabled(cuda::LaunchGroup::kNorm) ? "on" : "off");
  std::mt19937_64 rng(11);
  // k >= 4096: the GEMVs take their path that loads weights before PdlWait.
  const int D = 4096, I = 4096, kSteps = 24;
  const std::vector<__nv_bfloat16> w_gu =
      ToBf16(RandomUniform(static_cast<size_t>(2) * I * D, rng, -0.03f, 0.03f));
  const std::vector<__nv_bfloat16> w_down =
      ToBf16(RandomUniform(static_cast<size_t>(D) * I, rng, -0.03f, 0.03f));
  DevArray<__nv_bfloat16> d_gu, d_down, act_hi(I);
  d_gu.Upload(w_gu);
  d_down.Upload(w_down);
  cudaStream_t stream = nullptr;
  DMS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const cuda::GemmInput act{act_hi.get(), nullptr};
  for (const int width : {D, 262146}) {
    // The norm runs over `width`; the GEMVs read its first D outputs and
    // write the first D entries of the residual's delta.
    const std::vector<float> norm_w = RandomUniform(width, rng, 0.5f, 1.5f);
    const std::vector<float> x0 = RandomUniform(width, rng);
    DevArray<__nv_bfloat16> gin(width);
    DevArray<float> d_norm, d_x(width), d_delta(width);
    d_norm.Upload(norm_w);
    const cuda::GemmInput in{gin.get(), nullptr};
    // Writes the residual and the last GEMV output after kSteps steps.
    auto run = [&](bool sync_each, std::vector<float>* x_out, std::vector<float>* y_out) {
      // On the chain's own stream: a plain cudaMemcpy / cudaMemset goes to the
      // legacy stream, which a non-blocking stream does not wait for.
      DMS_CUDA_CHECK(cudaMemcpyAsync(d_x.get(), x0.data(), width * sizeof(float),
                                     cudaMemcpyHostToDevice, stream));
      DMS_CUDA_CHECK(cudaMemsetAsync(d_delta.get(), 0, width * sizeof(float), stream));
      auto after = [&](cudaError_t e) {
        DMS_CUDA_CHECK(e);
        if (sync_each) DMS_CUDA_CHECK(cudaStreamSynchronize(stream));
      };
      for (int step = 0; step < kSteps; ++step) {
        after(cuda::LaunchRmsNorm(d_x.get(), d_delta.get(), nullptr, d_x.get(), nullptr, 1, width,
                                  d_norm.get(), 1e-6f, in, stream));
        after(cuda::LaunchGemvSwiGlu(in, 1, D, d_gu.get(), I, act, stream));
        after(cuda::LaunchGemv(act, 1, I, d_down.get(), D, d_delta.get(), stream));
      }
      DMS_CUDA_CHECK(cudaStreamSynchronize(stream));
      *x_out = d_x.Download();
      *y_out = d_delta.Download();
    };
    std::vector<float> x_sync, y_sync, x_chain, y_chain;
    run(true, &x_sync, &y_sync);
    for (float v : x_sync) ASSERT_TRUE(std::isfinite(v));
    for (int round = 0; round < 3; ++round) {
      run(false, &x_chain, &y_chain);
      EXPECT_TRUE(x_chain == x_sync) << "width " << width << ": residual, round " << round;
      EXPECT_TRUE(y_chain == y_sync) << "width " << width << ": GEMV output, round " << round;
    }
  }
  cudaStreamDestroy(stream);
}

}  // namespace
}  // namespace dms::gpu_testing
