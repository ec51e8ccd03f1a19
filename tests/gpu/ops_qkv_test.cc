// The QKV epilogue (bias, q/k RMSNorm, DMS decision of both variants,
// zeroing, RoPE, K/V in the cache dtype) and the projection variant's
// decision logits, against the CPU reference steps of CpuBackend::RunLayer.
// Decision agreement is reported; a decision may only differ where the
// reference logit is within 1e-4 of 0.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "engine/cpu/cpu_matmul.h"
#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/thread_pool.h"
#include "kernels/qkv_epilogue.h"
#include "tests/gpu/gpu_test_util.h"

namespace dms::gpu_testing {
namespace {

ThreadPool& Pool() {
  static ThreadPool pool(0);
  return pool;
}

constexpr int kMaxPos = 20000;

struct Case {
  int hd, hq, hkv;
  cuda::DecisionMode mode;
  bool per_layer, off, bias;
  cuda::KvDType dtype;
};

std::string Shape(const Case& c, int n) {
  const char* mode = c.mode == cuda::DecisionMode::kNeuron       ? "neuron"
                     : c.mode == cuda::DecisionMode::kProjection ? "proj"
                                                                 : "none";
  char buf[160];
  std::snprintf(buf, sizeof(buf), "n=%d hd=%d Hq=%d Hkv=%d %s%s%s%s kv=%s", n, c.hd, c.hq, c.hkv,
                mode, c.per_layer ? " per-layer" : "", c.off ? " off" : "", c.bias ? " bias" : "",
                c.dtype == cuda::KvDType::kBF16 ? "bf16" : "f32");
  return buf;
}

void RunCase(const Case& c, int n, std::mt19937_64& rng, int64_t* agree, int64_t* total) {
  const int hd = c.hd, hq = c.hq, hkv = c.hkv, g = hq / hkv, half = hd / 2;
  const size_t stride = static_cast<size_t>(hq + 2 * hkv) * hd;
  const float scale = 100.0f, offset = 5.0f, eps = 1e-6f;
  std::vector<float> qkv = RandomUniform(n * stride, rng, -2, 2);
  std::vector<float> bias = c.bias ? RandomUniform(stride, rng, -0.2f, 0.2f) : std::vector<float>();
  std::vector<float> qn = RandomUniform(hd, rng, 0.0f, 0.2f), kn = RandomUniform(hd, rng, 0.5f, 1.5f);
  std::vector<float> alpha = RandomUniform(static_cast<size_t>(n) * hkv, rng, 0.0f, 0.1f);
  std::vector<int32_t> pos(n);
  for (int32_t& p : pos) p = static_cast<int32_t>(rng() % kMaxPos);

  // Reference, step by step as CpuBackend::RunLayer.
  std::vector<float> q(static_cast<size_t>(n) * hq * hd), k(static_cast<size_t>(n) * hkv * hd), v(k.size());
  for (int t = 0; t < n; ++t) {
    for (size_t j = 0; j < stride; ++j) {
      const float x = qkv[t * stride + j] + (c.bias ? bias[j] : 0.0f);
      if (j < static_cast<size_t>(hq) * hd) q[t * hq * hd + j] = x;
      else if (j < static_cast<size_t>(hq + hkv) * hd) k[t * hkv * hd + j - hq * hd] = x;
      else v[t * hkv * hd + j - (hq + hkv) * hd] = x;
    }
  }
  std::vector<uint8_t> dec(static_cast<size_t>(n) * hkv, 0);
  std::vector<float> logit(dec.size(), 0.0f);
  RmsNormHeads(Pool(), q.data(), n, hq, hd, qn.data(), eps);
  RmsNormHeads(Pool(), k.data(), n, hkv, hd, kn.data(), eps);
  for (int t = 0; t < n; ++t) {
    for (int h = 0; h < hkv; ++h) {
      float& e = q[(static_cast<size_t>(t) * hq + h * g) * hd + hd - 1];
      if (c.mode == cuda::DecisionMode::kProjection) logit[t * hkv + h] = alpha[t * hkv + h] * scale - offset;
      if (c.mode == cuda::DecisionMode::kNeuron) {
        logit[t * hkv + h] = e * scale - offset;
        e = 0.0f;
      }
    }
    for (int h = 0; h < hkv; ++h) {
      if (c.per_layer) logit[t * hkv + h] = logit[t * hkv];
      dec[t * hkv + h] = c.mode != cuda::DecisionMode::kNone && !c.off && logit[t * hkv + h] > 0.0f;
    }
  }
  const std::vector<double> inv_freq = RopeInvFreq(1e6, hd);
  ApplyRope(Pool(), q.data(), n, hq, hd, pos.data(), inv_freq);
  ApplyRope(Pool(), k.data(), n, hkv, hd, pos.data(), inv_freq);
  if (c.mode == cuda::DecisionMode::kNeuron) {
    for (int t = 0; t < n; ++t)
      for (int h = 0; h < hkv; ++h) q[(static_cast<size_t>(t) * hq + h * g) * hd + hd - 1] = 0.0f;
  }

  std::vector<float> cs(static_cast<size_t>(kMaxPos) * half), sn(cs.size());
  for (int p = 0; p < kMaxPos; ++p) {
    for (int i = 0; i < half; ++i) {
      cs[static_cast<size_t>(p) * half + i] = static_cast<float>(std::cos(p * inv_freq[i]));
      sn[static_cast<size_t>(p) * half + i] = static_cast<float>(std::sin(p * inv_freq[i]));
    }
  }
  DevArray<float> d_qkv, d_bias, d_qn, d_kn, d_cos, d_sin, d_alpha;
  DevArray<int32_t> d_pos;
  d_qkv.Upload(qkv);
  if (c.bias) d_bias.Upload(bias);
  d_qn.Upload(qn);
  d_kn.Upload(kn);
  d_cos.Upload(cs);
  d_sin.Upload(sn);
  d_alpha.Upload(alpha);
  d_pos.Upload(pos);
  const int es = cuda::KvDTypeSize(c.dtype);
  DevArray<float> d_q(q.size()), d_logit(dec.size());
  DevArray<uint8_t> d_k(k.size() * es), d_v(v.size() * es), d_dec(dec.size());
  cuda::QkvEpilogueParams p;
  p.qkv = d_qkv.get();
  if (c.bias) {
    p.q_bias = d_bias.get();
    p.k_bias = d_bias.get() + hq * hd;
    p.v_bias = d_bias.get() + (hq + hkv) * hd;
  }
  p.q_norm = d_qn.get();
  p.k_norm = d_kn.get();
  p.rope_cos = d_cos.get();
  p.rope_sin = d_sin.get();
  p.positions = d_pos.get();
  p.alpha_logits = d_alpha.get();
  p.num_tokens = n;
  p.num_q_heads = hq;
  p.num_kv_heads = hkv;
  p.head_dim = hd;
  p.eps = eps;
  p.mode = c.mode;
  p.per_layer = c.per_layer;
  p.decisions_off = c.off;
  p.alpha_scale = scale;
  p.alpha_offset = offset;
  p.q_out = d_q.get();
  p.k_out = d_k.get();
  p.v_out = d_v.get();
  p.kv_dtype = c.dtype;
  p.decisions = d_dec.get();
  p.decision_logits = d_logit.get();
  DMS_CUDA_CHECK(cuda::LaunchQkvEpilogue(p, nullptr));
  DMS_CUDA_CHECK(cudaDeviceSynchronize());

  auto as_float = [&](const std::vector<uint8_t>& bytes) {
    std::vector<float> out(bytes.size() / es);
    for (size_t i = 0; i < out.size(); ++i) {
      if (es == 4) {
        std::memcpy(&out[i], &bytes[i * 4], 4);
      } else {
        out[i] = Bf16BytesToFloat(&bytes[i * 2]);
      }
    }
    return out;
  };
  auto rounded = [&](std::vector<float> x) {
    if (c.dtype == cuda::KvDType::kBF16) for (float& e : x) e = RoundBf16(e);
    return x;
  };
  const std::string shape = Shape(c, n);
  // q in f32: only the RMS sum order differs (float vs double).
  EXPECT_TRUE(CheckClose("qkv_epilogue.q", shape, Compare(d_q.Download(), q), 1e-12, 1e-5));
  // K/V in the cache dtype: compared with the rounded reference (a rare
  // value near a bf16 rounding boundary may land one ulp away).
  const double kv_abs = c.dtype == cuda::KvDType::kBF16 ? 3e-2 : 1e-5;
  const double kv_nmse = c.dtype == cuda::KvDType::kBF16 ? 1e-5 : 1e-10;
  EXPECT_TRUE(CheckClose("qkv_epilogue.k", shape, Compare(as_float(d_k.Download()), rounded(k)), kv_nmse, kv_abs));
  EXPECT_TRUE(CheckClose("qkv_epilogue.v", shape, Compare(as_float(d_v.Download()), rounded(v)), 0.0, 0.0));
  const std::vector<uint8_t> got = d_dec.Download();
  int64_t same = 0, suspicious = 0;
  for (size_t i = 0; i < dec.size(); ++i) {
    if (got[i] == dec[i]) {
      ++same;
    } else if (std::abs(logit[i]) >= 1e-4f) {
      ++suspicious;
    }
  }
  *agree += same;
  *total += static_cast<int64_t>(dec.size());
  EXPECT_EQ(suspicious, 0) << "decisions differ where the reference logit is not near 0";
  char m[96];
  std::snprintf(m, sizeof(m), "agree %lld/%zu", static_cast<long long>(same), dec.size());
  Report("qkv_epilogue.d", shape, m, suspicious == 0);
  if (c.mode != cuda::DecisionMode::kNone) {
    const ErrorStats e = Compare(d_logit.Download(), logit);
    EXPECT_LE(e.max_abs, 2e-3) << "decision logits";
  }
}

TEST(QkvEpilogueOp, SweepMatchesTheCpuReference) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(11);
  int64_t agree = 0, total = 0;
  const cuda::DecisionMode modes[] = {cuda::DecisionMode::kNeuron, cuda::DecisionMode::kProjection,
                                      cuda::DecisionMode::kNone};
  int i = 0;
  for (int hd : {16, 32, 64, 128}) {
    for (int g : {1, 2, 4, 8}) {
      const cuda::DecisionMode mode = modes[i % 3];
      const Case c{hd, 2 * g, 2, mode, i % 4 == 1, i % 7 == 3, i % 2 == 0,
                   i % 2 ? cuda::KvDType::kF32 : cuda::KvDType::kBF16};
      RunCase(c, 1 + (i * 37) % 300, rng, &agree, &total);
      ++i;
    }
  }
  // Qwen3-8B geometry, both variants.
  RunCase({128, 32, 8, cuda::DecisionMode::kNeuron, false, false, false, cuda::KvDType::kBF16}, 257, rng, &agree, &total);
  RunCase({128, 32, 8, cuda::DecisionMode::kProjection, true, false, false, cuda::KvDType::kF32}, 64, rng, &agree, &total);
  // Decode-sized steps (<= 16 tokens) split a token's heads over blocks; the
  // decision sources then sit in different blocks.
  RunCase({128, 32, 8, cuda::DecisionMode::kNeuron, false, false, false, cuda::KvDType::kBF16}, 1, rng, &agree, &total);
  RunCase({128, 32, 8, cuda::DecisionMode::kNeuron, true, false, true, cuda::KvDType::kF32}, 3, rng, &agree, &total);
  RunCase({128, 32, 8, cuda::DecisionMode::kProjection, false, false, true, cuda::KvDType::kBF16}, 1, rng, &agree, &total);
  RunCase({64, 64, 8, cuda::DecisionMode::kNeuron, false, false, false, cuda::KvDType::kBF16}, 16, rng, &agree, &total);
  RunCase({128, 32, 8, cuda::DecisionMode::kNone, false, false, false, cuda::KvDType::kBF16}, 2, rng, &agree, &total);
  RunCase({128, 32, 8, cuda::DecisionMode::kNeuron, false, true, false, cuda::KvDType::kBF16}, 5, rng, &agree, &total);
  std::printf("  decision agreement: %lld / %lld (%.4f%%)\n", static_cast<long long>(agree),
              static_cast<long long>(total), 100.0 * agree / std::max<int64_t>(1, total));
}

// head_dim 64/128/256 take the rows kernel: a warp per 4 heads of a token for
// steps of more than 16 tokens, a warp per head (loads before PdlWait) for
// decode steps. A decode token batched with a prefill must get the bits of
// its solo step, so: every output of an n-token launch equal, byte for byte,
// to n one-token launches (outputs poisoned before each run).
TEST(QkvEpilogueOp, ManyTokensAreBitExactWithTheTokenByTokenKernel) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(13);
  const cuda::DecisionMode modes[] = {cuda::DecisionMode::kNeuron, cuda::DecisionMode::kProjection,
                                      cuda::DecisionMode::kNone};
  struct Geometry { int hq, hkv; };
  const Geometry geometries[] = {{32, 8}, {3, 1}, {8, 8}, {10, 5}, {64, 4}};
  int i = 0;
  for (int hd : {64, 128, 256}) {
    for (const Geometry& geo : geometries) {
      const cuda::DecisionMode mode = modes[i % 3];
      const bool per_layer = i % 4 == 1, off = i % 7 == 3, bias = i % 2 == 0;
      const cuda::KvDType dtype = i % 3 == 2 ? cuda::KvDType::kF32 : cuda::KvDType::kBF16;
      const int n = 17 + (i * 53) % 200, hq = geo.hq, hkv = geo.hkv;
      ++i;
      const size_t stride = static_cast<size_t>(hq + 2 * hkv) * hd;
      std::vector<int32_t> pos(n);
      for (int32_t& p : pos) p = static_cast<int32_t>(rng() % kMaxPos);
      DevArray<float> d_qkv, d_bias, d_qn, d_kn, d_cos, d_sin, d_alpha;
      DevArray<int32_t> d_pos;
      d_qkv.Upload(RandomUniform(n * stride, rng, -2, 2));
      d_bias.Upload(RandomUniform(stride, rng, -0.2f, 0.2f));
      d_qn.Upload(RandomUniform(hd, rng, 0.0f, 0.2f));
      d_kn.Upload(RandomUniform(hd, rng, 0.5f, 1.5f));
      d_cos.Upload(RandomUniform(static_cast<size_t>(kMaxPos) * hd / 2, rng, -1, 1));
      d_sin.Upload(RandomUniform(static_cast<size_t>(kMaxPos) * hd / 2, rng, -1, 1));
      // Logits near the threshold: both signs of decision in every case.
      d_alpha.Upload(RandomUniform(static_cast<size_t>(n) * hkv, rng, 0.0f, 0.1f));
      d_pos.Upload(pos);
      const int es = cuda::KvDTypeSize(dtype);
      DevArray<float> d_q(static_cast<size_t>(n) * hq * hd), d_logit(static_cast<size_t>(n) * hkv);
      DevArray<uint8_t> d_k(static_cast<size_t>(n) * hkv * hd * es), d_v(d_k.size()), d_dec(d_logit.size());

      auto launch = [&](int r0, int rows, __nv_bfloat16* q16 = nullptr) {
        cuda::QkvEpilogueParams p;
        p.qkv = d_qkv.get() + r0 * stride;
        if (bias) {
          p.q_bias = d_bias.get();
          p.k_bias = d_bias.get() + hq * hd;
          p.v_bias = d_bias.get() + (hq + hkv) * hd;
        }
        p.q_norm = d_qn.get();
        p.k_norm = d_kn.get();
        p.rope_cos = d_cos.get();
        p.rope_sin = d_sin.get();
        p.positions = d_pos.get() + r0;
        p.alpha_logits = d_alpha.get() + r0 * hkv;
        p.num_tokens = rows;
        p.num_q_heads = hq;
        p.num_kv_heads = hkv;
        p.head_dim = hd;
        p.eps = 1e-6f;
        p.mode = mode;
        p.per_layer = per_layer;
        p.decisions_off = off;
        p.q_out = q16 ? nullptr : d_q.get() + static_cast<size_t>(r0) * hq * hd;
        p.q_out_bf16 = q16 ? q16 + static_cast<size_t>(r0) * hq * hd : nullptr;
        p.k_out = d_k.get() + static_cast<size_t>(r0) * hkv * hd * es;
        p.v_out = d_v.get() + static_cast<size_t>(r0) * hkv * hd * es;
        p.kv_dtype = dtype;
        p.decisions = d_dec.get() + r0 * hkv;
        p.decision_logits = d_logit.get() + r0 * hkv;
        DMS_CUDA_CHECK(cuda::LaunchQkvEpilogue(p, nullptr));
      };
      auto run = [&](bool token_by_token, std::vector<uint8_t>* all) {
        d_q.Poison();
        d_k.Poison();
        d_v.Poison();
        d_dec.Poison();
        d_logit.Poison();
        if (token_by_token) {
          for (int r = 0; r < n; ++r) launch(r, 1);
        } else {
          launch(0, n);
        }
        DMS_CUDA_CHECK(cudaDeviceSynchronize());
        all->clear();
        auto append = [&](const void* data, size_t bytes) {
          const uint8_t* b = static_cast<const uint8_t*>(data);
          all->insert(all->end(), b, b + bytes);
        };
        const std::vector<float> q = d_q.Download(), logit = d_logit.Download();
        const std::vector<uint8_t> k = d_k.Download(), v = d_v.Download(), dec = d_dec.Download();
        append(q.data(), q.size() * 4);
        append(k.data(), k.size());
        append(v.data(), v.size());
        append(dec.data(), dec.size());
        append(logit.data(), logit.size() * 4);
      };
      std::vector<uint8_t> rows, tokens;
      run(false, &rows);
      run(true, &tokens);
      ASSERT_EQ(rows.size(), tokens.size());
      size_t differ = 0;
      for (size_t b = 0; b < rows.size(); ++b) differ += rows[b] != tokens[b];
      char shape[160];
      std::snprintf(shape, sizeof(shape), "n=%d hd=%d Hq=%d Hkv=%d mode=%d%s%s%s kv=%s", n, hd, hq,
                    hkv, static_cast<int>(mode), per_layer ? " per-layer" : "", off ? " off" : "",
                    bias ? " bias" : "", dtype == cuda::KvDType::kBF16 ? "bf16" : "f32");
      EXPECT_EQ(differ, 0u) << shape << ": " << differ << " of " << rows.size() << " bytes differ";
      Report("qkv_epilogue.rows", shape, differ == 0 ? "bit-exact" : "DIFFERS", differ == 0);
      // q as bf16 (q_out_bf16 instead of q_out), from both kernels: the f32 q
      // rounded to nearest even, bit for bit.
      const std::vector<float> q32 = d_q.Download();
      DevArray<__nv_bfloat16> d_q16(q32.size());
      for (const bool token_by_token : {false, true}) {
        d_q16.Poison();
        if (token_by_token) {
          for (int r = 0; r < n; ++r) launch(r, 1, d_q16.get());
        } else {
          launch(0, n, d_q16.get());
        }
        const std::vector<__nv_bfloat16> q16 = d_q16.Download();
        size_t wrong = 0;
        for (size_t e = 0; e < q32.size(); ++e) {
          const __nv_bfloat16 want = __float2bfloat16_rn(q32[e]);
          wrong += std::memcmp(&q16[e], &want, sizeof(want)) != 0;
        }
        EXPECT_EQ(wrong, 0u) << shape << (token_by_token ? " (token kernel)" : " (rows kernel)")
                             << ": " << wrong << " bf16 q elements differ";
        Report(token_by_token ? "qkv_epilogue.q_bf16.token" : "qkv_epilogue.q_bf16.rows", shape,
               wrong == 0 ? "bit-exact" : "DIFFERS", wrong == 0);
      }
    }
  }
}

TEST(QkvEpilogueOp, DmsAlphaLogitsMatch) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(12);
  for (int dim : {64, 4096}) {
    for (int hkv : {2, 8}) {
      const int rows = 19;
      std::vector<float> x = RandomUniform(static_cast<size_t>(rows) * dim, rng, -3, 3);
      std::vector<float> nw = RandomUniform(dim, rng, 0.5f, 1.5f);
      std::vector<__nv_bfloat16> w = ToBf16(RandomUniform(static_cast<size_t>(hkv) * dim, rng, -0.1f, 0.1f));
      std::vector<float> h(x.size()), ref(static_cast<size_t>(rows) * hkv);
      RmsNormRows(Pool(), x.data(), rows, dim, nw.data(), 1e-6, h.data());
      TensorView tv;
      tv.name = "alpha";
      tv.dtype = DType::kBF16;
      tv.shape = {hkv, dim};
      tv.data = reinterpret_cast<const uint8_t*>(w.data());
      tv.nbytes = w.size() * 2;
      MatMul(Pool(), h.data(), rows, dim, tv, nullptr, ref.data());
      DevArray<float> d_x, d_nw, d_out(ref.size());
      DevArray<__nv_bfloat16> d_w;
      d_x.Upload(x);
      d_nw.Upload(nw);
      d_w.Upload(w);
      DMS_CUDA_CHECK(cuda::LaunchDmsAlphaLogits(d_x.get(), rows, dim, d_nw.get(), d_w.get(), hkv, 1e-6f, d_out.get(), nullptr));
      // fp32 dot products of `dim` terms summed in another order.
      const ErrorStats e = Compare(d_out.Download(), ref);
      EXPECT_TRUE(CheckClose("dms_alpha", "rows=19 dim=" + std::to_string(dim) + " Hkv=" + std::to_string(hkv),
                             e, 1e-11, 1e-5 * e.max_ref + 1e-6));
    }
  }
}

}  // namespace
}  // namespace dms::gpu_testing
