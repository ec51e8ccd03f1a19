// Checkpoint::Load: valid layouts load with every weight bound; each broken
// checkpoint fails with its exact one-line message.
#include "engine/model/checkpoint.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/model/bad_checkpoints.h"
#include "tests/model/model_test_util.h"
#include "tests/test_util.h"

namespace dms {
namespace {

using testing::BadCheckpointCase;
using testing::SmallConfig;
using testing::TempDir;
using testing::WriteTestCheckpoint;
namespace fs = std::filesystem;

class BadCheckpointTest : public ::testing::TestWithParam<BadCheckpointCase> {};

// On a small stack, so that recursion over a deeply nested input crashes.
TEST_P(BadCheckpointTest, FailsWithExactMessage) {
  TempDir tmp;
  const std::string dir = tmp.File("model");
  const std::string expected = GetParam().build(dir);
  testing::RunWithStack(testing::kSmallStackBytes, [&] {
    auto ckpt = Checkpoint::Load(dir);
    ASSERT_FALSE(ckpt.ok());
    EXPECT_EQ(ckpt.status().message(), expected);
    EXPECT_EQ(ckpt.status().message().find('\n'), std::string::npos);
  });
}

// LoadModelConfig (what dms-server sizes its per-layer metrics by) refuses
// what Load refuses about the config and the layers.
TEST(CheckpointTest, LoadModelConfigChecksLayersAgainstTheWeights) {
  TempDir tmp;
  const std::string dir = tmp.File("model");
  const std::string expected = testing::ConfigWith(dir, "num_hidden_layers", 10'000'000) +
                               ": num_hidden_layers (10000000) is more than the layers in " +
                               dir + "/model.safetensors (2)";
  auto config = LoadModelConfig(dir);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().message(), expected);
  WriteTestCheckpoint(dir, SmallConfig());
  config = LoadModelConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->num_layers, 2);
}

INSTANTIATE_TEST_SUITE_P(Cases, BadCheckpointTest,
                         ::testing::ValuesIn(testing::BadCheckpointCases()),
                         [](const auto& info) { return info.param.name; });

// Every byte of every tensor equals what the writer was asked to write.
void ExpectPatternBytes(const Checkpoint& ckpt, const std::vector<TensorSpec>& specs) {
  for (size_t t = 0; t < specs.size(); ++t) {
    const TensorView* view = nullptr;
    for (const auto& f : ckpt.files()) {
      if ((view = f->Find(specs[t].name)) != nullptr) break;
    }
    ASSERT_NE(view, nullptr) << specs[t].name;
    ASSERT_EQ(view->nbytes, specs[t].nbytes());
    for (size_t i = 0; i < view->nbytes; ++i) {
      ASSERT_EQ(view->data[i], testing::PatternByte(t, i)) << specs[t].name << " byte " << i;
    }
  }
}

TEST(CheckpointTest, LoadsSingleFileAndBindsEveryWeight) {
  TempDir tmp;
  auto specs = WriteTestCheckpoint(tmp.path(), SmallConfig());
  auto ckpt = Checkpoint::Load(tmp.path() + "/");  // trailing slash is fine
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  const Checkpoint& c = **ckpt;
  EXPECT_EQ(c.dir(), tmp.path());
  EXPECT_FALSE(c.sharded());
  EXPECT_EQ(c.files().size(), 1u);
  EXPECT_TRUE(c.unexpected_tensors().empty());
  EXPECT_EQ(c.files()[0]->metadata().at("format"), "pt");
  const ModelWeights& w = c.weights();
  ASSERT_EQ(w.layers.size(), 2u);
  EXPECT_EQ(w.embed_tokens->ShapeString(), "[80, 48]");
  EXPECT_EQ(w.lm_head->ShapeString(), "[80, 48]");
  EXPECT_NE(w.lm_head, w.embed_tokens);
  EXPECT_EQ(w.final_norm->ShapeString(), "[48]");
  for (const LayerWeights& l : w.layers) {
    EXPECT_EQ(l.q_proj->ShapeString(), "[64, 48]");
    EXPECT_EQ(l.k_proj->ShapeString(), "[32, 48]");
    EXPECT_EQ(l.v_proj->ShapeString(), "[32, 48]");
    EXPECT_EQ(l.o_proj->ShapeString(), "[48, 64]");
    EXPECT_EQ(l.q_norm->ShapeString(), "[16]");
    EXPECT_EQ(l.k_norm->ShapeString(), "[16]");
    EXPECT_EQ(l.gate_proj->ShapeString(), "[96, 48]");
    EXPECT_EQ(l.up_proj->ShapeString(), "[96, 48]");
    EXPECT_EQ(l.down_proj->ShapeString(), "[48, 96]");
    EXPECT_EQ(l.input_layernorm->ShapeString(), "[48]");
    EXPECT_EQ(l.post_attention_layernorm->ShapeString(), "[48]");
    EXPECT_EQ(l.q_bias, nullptr);
    EXPECT_EQ(l.dms_proj_alpha, nullptr);
    EXPECT_EQ(l.dms_proj_alpha_norm, nullptr);
  }
  int64_t expected_params = 0;
  for (const auto& s : specs) expected_params += static_cast<int64_t>(s.nbytes() / 2);
  EXPECT_EQ(c.num_parameters(), expected_params);
  ExpectPatternBytes(c, specs);
}

TEST(CheckpointTest, LoadsShardedCheckpointThroughIndex) {
  TempDir tmp;
  auto specs = WriteTestCheckpoint(tmp.path(), SmallConfig(), {}, 30000);
  ASSERT_TRUE(fs::exists(tmp.File("model.safetensors.index.json")));
  ASSERT_FALSE(fs::exists(tmp.File("model.safetensors")));
  auto ckpt = Checkpoint::Load(tmp.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  EXPECT_TRUE((*ckpt)->sharded());
  ASSERT_EQ((*ckpt)->files().size(), 4u);
  EXPECT_EQ((*ckpt)->files()[0]->path(), tmp.File("model-00001-of-00004.safetensors"));
  EXPECT_EQ((*ckpt)->files()[3]->path(), tmp.File("model-00004-of-00004.safetensors"));
  ExpectPatternBytes(**ckpt, specs);
}

TEST(CheckpointTest, TiedHeadMayBeAbsentAndIsCountedOnce) {
  TempDir tmp;
  auto cfg = SmallConfig();
  cfg["tie_word_embeddings"] = true;
  auto specs = WriteTestCheckpoint(tmp.path(), cfg);
  auto ckpt = Checkpoint::Load(tmp.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  EXPECT_EQ((*ckpt)->weights().lm_head, (*ckpt)->weights().embed_tokens);
  int64_t params = 0;
  for (const auto& s : specs) params += static_cast<int64_t>(s.nbytes() / 2);
  EXPECT_EQ((*ckpt)->num_parameters(), params);
}

TEST(CheckpointTest, TiedCheckpointWithStoredHeadIgnoresIt) {
  TempDir tmp;
  auto cfg = SmallConfig();
  cfg["tie_word_embeddings"] = true;
  WriteTestCheckpoint(tmp.path(), cfg, [](std::vector<TensorSpec>& s) {
    s.push_back({"lm_head.weight", DType::kBF16, {80, 48}});
  });
  auto ckpt = Checkpoint::Load(tmp.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  EXPECT_EQ((*ckpt)->weights().lm_head, (*ckpt)->weights().embed_tokens);
  EXPECT_EQ((*ckpt)->unexpected_tensors(), std::vector<std::string>{"lm_head.weight"});
}

TEST(CheckpointTest, ExtraTensorsAreIgnoredButCounted) {
  TempDir tmp;
  WriteTestCheckpoint(tmp.path(), SmallConfig(), [](std::vector<TensorSpec>& s) {
    s.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", DType::kF32, {8}});
    s.push_back({"model.extra", DType::kF16, {3, 3}});
  });
  auto ckpt = Checkpoint::Load(tmp.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  EXPECT_EQ(
      (*ckpt)->unexpected_tensors(),
      (std::vector<std::string>{"model.extra", "model.layers.0.self_attn.rotary_emb.inv_freq"}));
}

TEST(CheckpointTest, AcceptsBf16F16AndF32) {
  TempDir tmp;
  WriteTestCheckpoint(tmp.path(), SmallConfig(), [](std::vector<TensorSpec>& s) {
    testing::SpecNamed(s, "model.layers.0.self_attn.q_proj.weight").dtype = DType::kF32;
    testing::SpecNamed(s, "model.layers.1.mlp.down_proj.weight").dtype = DType::kF16;
  });
  auto ckpt = Checkpoint::Load(tmp.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  const ModelWeights& w = (*ckpt)->weights();
  EXPECT_EQ(w.layers[0].q_proj->dtype, DType::kF32);
  EXPECT_EQ(w.layers[0].q_proj->nbytes, 64u * 48 * 4);
  EXPECT_EQ(w.layers[1].down_proj->dtype, DType::kF16);
  EXPECT_EQ(w.layers[1].q_proj->dtype, DType::kBF16);
  auto summary = nlohmann::json::parse((*ckpt)->SummaryJson());
  EXPECT_EQ(summary["dtypes"]["F32"], 1);
  EXPECT_EQ(summary["dtypes"]["F16"], 1);
  EXPECT_EQ(summary["dtypes"]["BF16"], summary["num_tensors"].get<int>() - 2);
}

TEST(CheckpointTest, ProjectionVariantAndBiasesAreBound) {
  TempDir tmp;
  auto cfg = SmallConfig();
  cfg["dms_separate_alpha"] = true;
  cfg["attention_bias"] = true;
  WriteTestCheckpoint(tmp.path(), cfg);
  auto ckpt = Checkpoint::Load(tmp.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  for (const LayerWeights& l : (*ckpt)->weights().layers) {
    ASSERT_NE(l.dms_proj_alpha, nullptr);
    EXPECT_EQ(l.dms_proj_alpha->ShapeString(), "[2, 48]");
    EXPECT_EQ(l.dms_proj_alpha_norm->ShapeString(), "[48]");
    EXPECT_EQ(l.q_bias->ShapeString(), "[64]");
    EXPECT_EQ(l.k_bias->ShapeString(), "[32]");
    EXPECT_EQ(l.v_bias->ShapeString(), "[32]");
    EXPECT_EQ(l.o_bias->ShapeString(), "[48]");
  }
}

TEST(CheckpointTest, MissingDirectory) {
  TempDir tmp;
  auto ckpt = Checkpoint::Load(tmp.File("nope"));
  ASSERT_FALSE(ckpt.ok());
  EXPECT_EQ(ckpt.status().message(), tmp.File("nope") + ": no such model directory");
}

TEST(CheckpointTest, SummaryJsonDescribesTheCheckpoint) {
  TempDir tmp;
  WriteTestCheckpoint(tmp.path(), SmallConfig(), {}, 30000);
  auto ckpt = Checkpoint::Load(tmp.path());
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  auto j = nlohmann::json::parse((*ckpt)->SummaryJson());
  EXPECT_EQ(j["model_dir"], tmp.path());
  EXPECT_EQ(j["config"]["hidden_size"], 48);
  EXPECT_EQ(j["config"]["dms_window_size"], 4);
  EXPECT_EQ(j["num_parameters"], (*ckpt)->num_parameters());
  EXPECT_EQ(j["sharded"], true);
  ASSERT_EQ(j["files"].size(), 4u);
  EXPECT_EQ(j["files"][0]["name"], "model-00001-of-00004.safetensors");
  uint64_t total = 0;
  for (const auto& f : j["files"]) total += f["bytes"].get<uint64_t>();
  EXPECT_EQ(j["total_bytes"], total);
  EXPECT_EQ(j["num_tensors"], 2 * 11 + 3);
  EXPECT_TRUE(j["unexpected_tensors"].empty());
}

// The project's own golden checkpoints (tests/data/models) all load.
TEST(CheckpointTest, LoadsProjectGoldenModels) {
  const std::string models = testing::TestDataDir() + "/models";
  if (!fs::is_directory(models)) GTEST_SKIP() << "no " << models;
  int loaded = 0;
  for (const auto& entry : fs::directory_iterator(models)) {
    if (!fs::exists(entry.path() / "config.json")) continue;
    auto ckpt = Checkpoint::Load(entry.path().string());
    ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
    EXPECT_TRUE((*ckpt)->unexpected_tensors().empty()) << entry.path();
    EXPECT_GT((*ckpt)->num_parameters(), 0);
    ++loaded;
  }
  EXPECT_GE(loaded, 1);
}

// The outside golden checkpoints (when ../shared/fixtures exists) load.
TEST(CheckpointTest, LoadsSharedFixtureModels) {
  const std::string shared = testing::SharedFixturesDir();
  if (shared.empty() || !fs::is_directory(shared + "/models")) {
    GTEST_SKIP() << "no shared fixtures";
  }
  int loaded = 0;
  for (const auto& entry : fs::directory_iterator(shared + "/models")) {
    if (!fs::exists(entry.path() / "config.json")) continue;
    auto ckpt = Checkpoint::Load(entry.path().string());
    ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
    const ModelConfig& c = (*ckpt)->config();
    EXPECT_TRUE(c.dms.enabled) << entry.path();
    EXPECT_EQ((*ckpt)->weights().layers.size(), static_cast<size_t>(c.num_layers));
    EXPECT_TRUE((*ckpt)->unexpected_tensors().empty()) << entry.path();
    for (const LayerWeights& l : (*ckpt)->weights().layers) {
      EXPECT_EQ(l.dms_proj_alpha != nullptr, c.dms.separate_alpha) << entry.path();
    }
    if (c.tie_word_embeddings) {
      EXPECT_EQ((*ckpt)->weights().lm_head, (*ckpt)->weights().embed_tokens);
    }
    ++loaded;
  }
  EXPECT_GE(loaded, 2);
}

}  // namespace
}  // namespace dms
