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
#include "tests/test_util.h"

namespace dms {
namespace {
namespace fs = std::filesystem;

constexpr float kTolerance = 2e-3f;  // max |diff| on logits (issue "Reference engine")

struct Golden {
  std::string dir;
  std::vector<int32_t> tokens;
  int prompt_len = 0;
  std::vector<float> logits;  // [T, vocab]
  std::vector<std::vector<int>> retained;
};

Golden LoadGolden(const std::string& dir) {
  Golden g;
  g.dir = dir;
  auto j = nlohmann::json::parse(testing::ReadFile(dir + "/golden.json"));
  g.tokens = j["tokens"].get<std::vector<int32_t>>();
  g.prompt_len = j.value("prompt_len", static_cast<int>(g.tokens.size()));
  g.retained = j["retained_per_layer_head"].get<std::vector<std::vector<int>>>();
  std::string bytes = testing::ReadFile(dir + "/" + j["logits_file"].get<std::string>());
  g.logits.resize(bytes.size() / sizeof(float));
  std::memcpy(g.logits.data(), bytes.data(), g.logits.size() * sizeof(float));
  return g;
}

std::vector<std::string> ModelDirs() {
  std::vector<std::string> dirs;
  for (const std::string& root :
       {testing::TestDataDir() + "/models", testing::SharedFixturesDir().empty()
                                                ? std::string()
                                                : testing::SharedFixturesDir() + "/models"}) {
    if (root.empty() || !fs::is_directory(root)) continue;
    for (const auto& e : fs::directory_iterator(root)) {
      if (fs::exists(e.path() / "golden.json")) dirs.push_back(e.path().string());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

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

std::vector<std::pair<std::string, std::vector<int>>> Chunkings(const Golden& g) {
  const int t = static_cast<int>(g.tokens.size());
  std::vector<std::pair<std::string, std::vector<int>>> out;
  out.push_back({"one prefill", {t}});
  std::vector<int> decode = {g.prompt_len};
  while (std::accumulate(decode.begin(), decode.end(), 0) < t) decode.push_back(1);
  out.push_back({"prompt + single decodes", decode});
  // Mixed: a multi-turn pattern of prefills and decodes.
  const int pattern[] = {7, 50, 1, 1, 62, 1, 1, 1, 13, 1, 30, 2};
  std::vector<int> mixed;
  for (int i = 0, left = t; left > 0; ++i) {
    int n = std::min(left, pattern[i % 12]);
    mixed.push_back(n);
    left -= n;
  }
  out.push_back({"mixed", mixed});
  std::mt19937 rng(t);
  std::vector<int> random;
  for (int left = t; left > 0;) {
    int n = std::min(left, std::uniform_int_distribution<int>(1, 40)(rng));
    random.push_back(n);
    left -= n;
  }
  out.push_back({"random", random});
  return out;
}

TEST(GoldenLogits, EveryModelEveryChunkingMatchesTheReference) {
  const auto dirs = ModelDirs();
  ASSERT_GE(dirs.size(), 1u) << "no golden models found under " << testing::TestDataDir();
  for (const std::string& dir : dirs) {
    SCOPED_TRACE(dir);
    Golden g = LoadGolden(dir);
    auto ckpt = Checkpoint::Load(dir);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
    const int vocab = (*ckpt)->config().vocab_size;
    ASSERT_EQ(g.logits.size(), g.tokens.size() * vocab);
    BackendOptions opts;
    opts.kv_block_size = 16;
    auto backend = CreateBackend(std::shared_ptr<const Checkpoint>(std::move(*ckpt)), opts);
    ASSERT_TRUE(backend.ok()) << backend.status().ToString();
    for (const auto& [name, chunks] : Chunkings(g)) {
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
