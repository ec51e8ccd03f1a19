// Greedy sampling on the device against std::max_element (first maximum),
// with ties and NaNs, bit-exact; the logit-row summary against the host's
// SummarizeLogits (index and maximum bit-exact, log-sum-exp to 1e-12),
// over vocabularies that fill one, part of one and many slices of its first
// pass, with ties inside a slice and across slices.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "engine/core/sampler.h"
#include "kernels/sampling.h"
#include "tests/gpu/gpu_test_util.h"

namespace dms::gpu_testing {
namespace {

TEST(SamplingOp, GreedyArgmaxMatchesTheHost) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(7);
  for (int vocab : {1, 31, 256, 1000, 151936}) {
    const int rows = 9;
    std::vector<float> logits = RandomUniform(static_cast<size_t>(rows) * vocab, rng, -20, 20);
    // Row 1: a tie between two maxima (the lower index wins); row 2: NaNs.
    if (vocab > 3) {
      logits[1 * vocab + vocab - 1] = 50.0f;
      logits[1 * vocab + vocab / 2] = 50.0f;
      logits[2 * vocab + 0] = NAN;
      logits[2 * vocab + vocab / 3] = NAN;
    }
    std::vector<int32_t> want(rows);
    for (int r = 0; r < rows; ++r) {
      int best = -1;
      for (int i = 0; i < vocab; ++i) {
        const float x = logits[static_cast<size_t>(r) * vocab + i];
        if (std::isnan(x)) continue;
        if (best < 0 || x > logits[static_cast<size_t>(r) * vocab + best]) best = i;
      }
      want[r] = best;
    }
    DevArray<float> d_logits;
    d_logits.Upload(logits);
    DevArray<int32_t> d_out(rows);
    d_out.Poison();
    DMS_CUDA_CHECK(cuda::LaunchGreedyArgmax(d_logits.get(), rows, vocab, d_out.get(), nullptr));
    const std::vector<int32_t> got = d_out.Download();
    EXPECT_EQ(got, want) << "vocab " << vocab;
    Report("greedy_argmax", "rows=9 vocab=" + std::to_string(vocab), "bit-exact", got == want);
  }
}

TEST(SamplingOp, LogitSummaryMatchesTheHost) {
  DMS_SKIP_WITHOUT_GPU();
  std::mt19937_64 rng(8);
  for (int vocab : {1, 31, 256, 1000, 2048, 2049, 6000, 151936}) {
    for (int rows : {1, 7, 33}) {
      std::vector<float> logits = RandomUniform(static_cast<size_t>(rows) * vocab, rng, -30, 30);
      if (vocab > 3 && rows > 1) {  // a tie between two maxima: the lower index wins
        logits[1 * vocab + vocab - 1] = 60.0f;
        logits[1 * vocab + vocab / 2] = 60.0f;
      }
      if (vocab > 5000 && rows > 2) {  // a tie inside one slice and across slices of the pass
        logits[2 * vocab + 4097] = 70.0f;
        logits[2 * vocab + 4095] = 70.0f;
        logits[2 * vocab + vocab - 2] = 70.0f;
      }
      DevArray<float> d_logits;
      d_logits.Upload(logits);
      DevArray<cuda::LogitRowSummary> d_out(rows);
      d_out.Poison();
      DevArray<uint8_t> scratch(cuda::LogitSummaryScratchBytes(rows, vocab));
      scratch.Poison();
      DMS_CUDA_CHECK(cuda::LaunchLogitSummary(d_logits.get(), rows, vocab, scratch.get(), d_out.get(), nullptr));
      const std::vector<cuda::LogitRowSummary> got = d_out.Download();
      bool ok = true;
      double worst = 0;
      for (int r = 0; r < rows; ++r) {
        const LogitSummary want =
            SummarizeLogits(std::span<const float>(logits.data() + static_cast<size_t>(r) * vocab, vocab));
        const double rel = std::abs(got[r].log_sum_exp - want.log_sum_exp) / std::abs(want.log_sum_exp);
        worst = std::max(worst, rel);
        ok &= got[r].argmax == want.argmax && got[r].max_logit == want.max_logit && rel < 1e-12;
        EXPECT_EQ(got[r].argmax, want.argmax) << "vocab " << vocab << " row " << r;
        EXPECT_EQ(got[r].max_logit, want.max_logit) << "vocab " << vocab << " row " << r;
        EXPECT_LT(rel, 1e-12) << "vocab " << vocab << " row " << r;
      }
      Report("logit_summary", "rows=" + std::to_string(rows) + " vocab=" + std::to_string(vocab),
             "max rel err lse " + std::to_string(worst), ok);
    }
  }
}

}  // namespace
}  // namespace dms::gpu_testing
