// Greedy sampling on the device against std::max_element (first maximum),
// with ties and NaNs, bit-exact.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

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

}  // namespace
}  // namespace dms::gpu_testing
