#include "tests/golden_models.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "tests/test_util.h"

namespace dms::testing {
namespace fs = std::filesystem;

GoldenModel LoadGoldenModel(const std::string& dir) {
  GoldenModel g;
  g.dir = dir;
  g.name = fs::path(dir).filename().string();
  auto j = nlohmann::json::parse(ReadFile(dir + "/golden.json"));
  g.tokens = j["tokens"].get<std::vector<int32_t>>();
  g.prompt_len = j.value("prompt_len", static_cast<int>(g.tokens.size()));
  g.retained = j["retained_per_layer_head"].get<std::vector<std::vector<int>>>();
  const std::string bytes = ReadFile(dir + "/" + j["logits_file"].get<std::string>());
  g.logits.resize(bytes.size() / sizeof(float));
  std::memcpy(g.logits.data(), bytes.data(), g.logits.size() * sizeof(float));
  double ss = 0;
  for (float x : g.logits) ss += static_cast<double>(x) * x;
  g.rms = std::sqrt(ss / std::max<size_t>(1, g.logits.size()));
  return g;
}

std::vector<std::string> GoldenModelDirs() {
  std::vector<std::string> dirs;
  const std::string shared = SharedFixturesDir();
  for (const std::string& root : {TestDataDir() + "/models", shared.empty() ? std::string() : shared + "/models"}) {
    if (root.empty() || !fs::is_directory(root)) continue;
    for (const auto& e : fs::directory_iterator(root)) {
      if (fs::exists(e.path() / "golden.json")) dirs.push_back(e.path().string());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  return dirs;
}

std::vector<std::pair<std::string, std::vector<int>>> GoldenChunkings(const GoldenModel& g) {
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
    const int n = std::min(left, pattern[i % 12]);
    mixed.push_back(n);
    left -= n;
  }
  out.push_back({"mixed", mixed});
  std::mt19937 rng(t);
  std::vector<int> random;
  for (int left = t; left > 0;) {
    const int n = std::min(left, std::uniform_int_distribution<int>(1, 40)(rng));
    random.push_back(n);
    left -= n;
  }
  out.push_back({"random", random});
  return out;
}

}  // namespace dms::testing
