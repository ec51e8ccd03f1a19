// Decode attention launched early behind the QKV epilogue (programmatic
// dependent launch): its blocks stage the cached keys before PdlWait, beside
// the epilogue, and must read nothing the epilogue writes (the query, the
// chunk's own K/V, the decision that marks the previous token) before it.
// Each step's epilogue gets a different q;k;v row, so an attention that read
// any of them early would see the step before's; the chained run (no host
// waits) must be the synchronised run bit for bit. Window 0 makes the
// current decision decide whether the previous token is visible.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "kernels/attention.h"
#include "kernels/launch.cuh"
#include "kernels/qkv_epilogue.h"
#include "tests/gpu/kv_harness.h"

namespace dms::gpu_testing {
namespace {

void RunChain(int window, std::mt19937_64& rng) {
  SCOPED_TRACE("window " + std::to_string(window));
  constexpr int kHkv = 8, kGroup = 4, kHq = kHkv * kGroup, kHd = 128, kSteps = 24, kSplits = 33;
  KvHarnessConfig cfg;
  cfg.num_kv_heads = kHkv;
  cfg.head_dim = kHd;
  cfg.window = window;
  cfg.num_blocks = 2 * kHkv * (3000 / 16 + 8);
  KvHarness hx(cfg);
  const SeqId a = hx.AddSequence();
  for (int n : {1200, 1, 1500}) {  // ~700 retained keys a head at 0.875
    KvStep s = hx.MakeStep({{a, n}}, 0.875, rng);
    hx.Upload(s);
    ASSERT_TRUE(hx.Append(s));
  }
  KvStep dec = hx.MakeStep({{a, 1}}, 0.875, rng);
  hx.Upload(dec);  // the chunk; its K/V and decision come from the epilogue below
  const int pos = dec.chunks[0].start_pos;

  const int width = (kHq + 2 * kHkv) * kHd, half = kHd / 2;
  std::vector<float> cs(static_cast<size_t>(pos + 1) * half), sn(cs.size());
  for (int t = 0; t <= pos; ++t) {
    for (int i = 0; i < half; ++i) {
      const double f = t * std::pow(1e6, -2.0 * i / kHd);
      cs[static_cast<size_t>(t) * half + i] = static_cast<float>(std::cos(f));
      sn[static_cast<size_t>(t) * half + i] = static_cast<float>(std::sin(f));
    }
  }
  const std::vector<float> rows = RandomUniform(static_cast<size_t>(kSteps) * width, rng, -2, 2);
  DevArray<float> d_rows, d_qkv(width), d_qn, d_kn, d_cos, d_sin, d_q(kHq * kHd);
  DevArray<int32_t> d_pos;
  d_rows.Upload(rows);
  d_qn.Upload(RandomUniform(kHd, rng, 0.5f, 1.5f));
  d_kn.Upload(RandomUniform(kHd, rng, 0.5f, 1.5f));
  d_cos.Upload(cs);
  d_sin.Upload(sn);
  d_pos.Upload(std::vector<int32_t>{pos});
  DevArray<__nv_bfloat16> d_k(kHkv * kHd), d_v(kHkv * kHd);
  DevArray<uint8_t> d_dec(kHkv);
  DevArray<float> d_out(static_cast<size_t>(kSteps) * kHq * kHd);
  DevArray<float> d_po(static_cast<size_t>(kSplits) * kHq * kHd), d_pml(kSplits * kHq * 2);
  DevArray<int32_t> d_count;
  d_count.Upload(std::vector<int32_t>(kHkv, 0));
  DevArray<cuda::AttnTile> d_tiles;
  d_tiles.Upload(std::vector<cuda::AttnTile>{{0, 0, 1}});

  cuda::QkvEpilogueParams e;
  e.qkv = d_qkv.get();
  e.q_norm = d_qn.get();
  e.k_norm = d_kn.get();
  e.rope_cos = d_cos.get();
  e.rope_sin = d_sin.get();
  e.positions = d_pos.get();
  e.num_tokens = 1;
  e.num_q_heads = kHq;
  e.num_kv_heads = kHkv;
  e.head_dim = kHd;
  e.mode = cuda::DecisionMode::kNeuron;
  e.q_out = d_q.get();
  e.k_out = d_k.get();
  e.v_out = d_v.get();
  e.kv_dtype = cuda::KvDType::kBF16;
  e.decisions = d_dec.get();
  cuda::AttentionParams p;
  p.q = d_q.get();
  p.k_new = d_k.get();
  p.v_new = d_v.get();
  p.decisions = d_dec.get();
  p.chunks = hx.d_chunks();
  p.tiles = d_tiles.get();
  p.num_tiles = 1;
  p.num_tokens = 1;
  p.num_q_heads = kHq;
  p.layer = cfg.layer;
  p.kv = hx.gpu().view();
  p.num_splits = kSplits;
  p.part_o = d_po.get();
  p.part_ml = d_pml.get();
  p.split_count = d_count.get();

  cudaStream_t stream = nullptr;
  DMS_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cuda::ProgrammaticLaunchScope pdl(true);
  auto run = [&](bool sync_each, std::vector<float>* out) {
    DMS_CUDA_CHECK(cudaStreamSynchronize(stream));
    d_out.Poison();
    auto after = [&](cudaError_t err) {
      DMS_CUDA_CHECK(err);
      if (sync_each) DMS_CUDA_CHECK(cudaStreamSynchronize(stream));
    };
    for (int step = 0; step < kSteps; ++step) {
      after(cudaMemcpyAsync(d_qkv.get(), d_rows.get() + static_cast<size_t>(step) * width,
                            width * sizeof(float), cudaMemcpyDeviceToDevice, stream));
      after(cuda::LaunchQkvEpilogue(e, stream));
      p.out = d_out.get() + static_cast<size_t>(step) * kHq * kHd;
      after(cuda::LaunchDmsAttention(p, stream));
    }
    DMS_CUDA_CHECK(cudaStreamSynchronize(stream));
    *out = d_out.Download();
  };
  std::vector<float> sync, chained;
  run(true, &sync);
  for (float v : sync) ASSERT_TRUE(std::isfinite(v));
  // The steps differ (a stale read would be visible).
  EXPECT_NE(std::vector<float>(sync.begin(), sync.begin() + kHq * kHd),
            std::vector<float>(sync.begin() + kHq * kHd, sync.begin() + 2 * kHq * kHd));
  for (int round = 0; round < 3; ++round) {
    run(false, &chained);
    int64_t wrong = 0;
    for (size_t i = 0; i < sync.size(); ++i) wrong += chained[i] != sync[i];
    EXPECT_EQ(wrong, 0) << "round " << round << ": " << wrong << " of " << sync.size()
                        << " outputs differ from the synchronised run";
  }
  cudaStreamDestroy(stream);
}

TEST(AttentionOp, EarlyLaunchedBehindTheQkvEpilogueIsTheSynchronisedRun) {
  DMS_SKIP_WITHOUT_GPU();
  {
    cuda::ProgrammaticLaunchScope pdl(true);
    if (!cuda::ProgrammaticLaunchEnabled(cuda::LaunchGroup::kAttention)) {
      GTEST_SKIP() << "no programmatic launch for the attention here (before sm_90, or DMS_PDL)";
    }
  }
  std::mt19937_64 rng(31);
  for (int window : {0, 512}) RunChain(window, rng);
}

}  // namespace
}  // namespace dms::gpu_testing
