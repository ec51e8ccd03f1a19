// The CPU engine against golden logits from the independent float64 PyTorch
// reference (tests/reference/), for several chunkings of the same tokens:
// one prefill; prompt + single-token decodes; a mixed split; random splits.
// Also the outside fixtures in ../shared/fixtures when present.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>

#include "engine/backends/backend_factory.h"
#include "engine/model/checkpoint.h"
#include "tests/golden_models.h"
#include "tests/test_util.h"

namespace dms {
namespace {
namespace fs = std::filesystem;

constexpr float kTolerance = 2e-3f;  // max |diff| on logits (issue "Reference engine")

using Golden = testing::GoldenModel;
using testing::GoldenChunkings;
using testing::GoldenModelDirs;
using testing::LoadGoldenModel;

// Feeds `tokens` in `chunks`, returns logits for every position.
std::vector<float> Score(Backend& b, const std::vector<int32_t>& tokens,
                         const std::vector<int>& chunks, SequenceKvStats* stats) {
  auto seq = b.CreateSequence();
  EXPECT_TRUE(seq.ok());
  std::vector<float> all, step;
  size_t pos = 0;
  for (int n : chunks) {
    ForwardChunk c{*seq, std::span<const int32_t>(tokens.data() + pos, n), n};
    Status st = b.Forward(std::span<const ForwardChunk>(&c, 1), &step);
    EXPECT_TRUE(st.ok()) << st.ToString();
    all.insert(all.end(), step.begin(), step.end());
    pos += n;
  }
  if (stats) *stats = b.SequenceStats(*seq);
  b.ReleaseSequence(*seq);
  return all;
}

TEST(GoldenLogits, EveryModelEveryChunkingMatchesTheReference) {
  const auto dirs = GoldenModelDirs();
  ASSERT_GE(dirs.size(), 1u) << "no golden models found under " << testing::TestDataDir();
  for (const std::string& dir : dirs) {
    SCOPED_TRACE(dir);
    Golden g = LoadGoldenModel(dir);
    auto ckpt = Checkpoint::Load(dir);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
    const int vocab = (*ckpt)->config().vocab_size;
    ASSERT_EQ(g.logits.size(), g.tokens.size() * vocab);
    BackendOptions opts;
    opts.kv_block_size = 16;
    auto backend = CreateBackend(std::shared_ptr<const Checkpoint>(std::move(*ckpt)), opts);
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    for (const auto& [name, chunks] : GoldenChunkings(g)) {
      SCOPED_TRACE(name);
      SequenceKvStats stats;
      std::vector<float> got = Score(**backend, g.tokens, chunks, &stats);
      ASSERT_EQ(got.size(), g.logits.size());
      float worst = 0;
      size_t worst_at = 0;
      for (size_t i = 0; i < got.size(); ++i) {
        const float d = std::abs(got[i] - g.logits[i]);
        if (!(d <= worst)) {  // NaN counts as worst
          worst = std::isnan(d) ? INFINITY : d;
          worst_at = i;
        }
      }
      std::printf("%-40s %-24s max|diff| %.3g\n", fs::path(dir).filename().c_str(), name.c_str(),
                  worst);
      EXPECT_LE(worst, kTolerance) << "worst at position " << worst_at / vocab << " token "
                                   << worst_at % vocab;
      EXPECT_EQ(stats.retained, g.retained);
      EXPECT_EQ(stats.logical_tokens, static_cast<int>(g.tokens.size()));
    }
    // Block accounting returns to zero after every sequence ends.
    EXPECT_EQ((*backend)->PoolStats().blocks_used, 0);
  }
}

}  // namespace
}  // namespace dms
