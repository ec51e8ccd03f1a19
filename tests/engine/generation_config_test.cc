// generation_config.json: the sampling defaults a checkpoint ships (Qwen3's
// own file below), what a request that sets nothing gets, and one clear line
// for a bad file.
#include "engine/runtime/generation_config.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/test_util.h"

namespace dms {
namespace {

TEST(GenerationConfig, Qwen3sDefaults) {
  StatusOr<GenerationDefaults> d = ParseGenerationConfig(
      R"({"bos_token_id": 151643, "do_sample": true, "eos_token_id": [151645, 151643],
          "pad_token_id": 151643, "temperature": 0.6, "top_k": 20, "top_p": 0.95,
          "transformers_version": "4.51.0"})",
      "generation_config.json");
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  const SamplingParams p = d->Apply(SamplingParams{});
  EXPECT_FLOAT_EQ(p.temperature, 0.6f);
  EXPECT_FLOAT_EQ(p.top_p, 0.95f);
  EXPECT_EQ(p.top_k, 20);
  EXPECT_EQ(p.min_p, 0.0f);
  EXPECT_EQ(p.repetition_penalty, 1.0f);
}

TEST(GenerationConfig, DoSampleFalseIsGreedyAndAnEmptyFileChangesNothing) {
  StatusOr<GenerationDefaults> d =
      ParseGenerationConfig(R"({"do_sample": false, "top_k": 50})", "g");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->Apply(SamplingParams{}).temperature, 0.0f);
  d = ParseGenerationConfig("{}", "g");
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->empty());
  const SamplingParams plain = d->Apply(SamplingParams{});
  EXPECT_EQ(plain.temperature, 1.0f);
  EXPECT_EQ(plain.top_k, 0);
}

TEST(GenerationConfig, BadFilesAreOneLineNamingTheField) {
  auto err = [](const std::string& text) {
    return ParseGenerationConfig(text, "m/generation_config.json").status();
  };
  EXPECT_EQ(err(R"({"temperature": "hot"})").message(),
            "m/generation_config.json: temperature: expected a number, found string \"hot\"");
  EXPECT_EQ(err(R"({"top_k": -5})").message(),
            "m/generation_config.json: top_k must be -1, 0 or a positive count, found -5");
  EXPECT_EQ(err(R"({"top_p": 1.5})").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(err(R"({"top_p": 1.5})").message().rfind("m/generation_config.json: ", 0), 0u);
  EXPECT_EQ(err("[1]").message(), "m/generation_config.json: expected a JSON object, found a list");
  EXPECT_EQ(err("{").code(), StatusCode::kInvalidArgument);
}

TEST(GenerationConfig, AMissingFileMeansNoDefaults) {
  testing::TempDir dir;
  StatusOr<GenerationDefaults> d = LoadGenerationConfig(dir.path());
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->empty());
  testing::WriteFile(dir.File("generation_config.json"), R"({"temperature": 0.7})");
  d = LoadGenerationConfig(dir.path());
  ASSERT_TRUE(d.ok());
  EXPECT_FLOAT_EQ(*d->temperature, 0.7f);
}

// Hostile files (docs/security.md): nesting, size and devices are refused
// before anything is parsed; the deep one on a small stack.
TEST(GenerationConfig, FilesBeyondTheJsonLimitsAreRefused) {
  testing::TempDir dir;
  const std::string path = dir.File("generation_config.json");
  testing::WriteFile(path, "{\"top_k\": " + testing::DeeplyNestedJson(100000) + "}");
  testing::RunWithStack(testing::kSmallStackBytes, [&] {
    EXPECT_EQ(LoadGenerationConfig(dir.path()).status().message(),
              path + ": generation config is nested deeper than 64 levels");
  });
  std::filesystem::resize_file(path, (1 << 20) + 1);
  EXPECT_EQ(LoadGenerationConfig(dir.path()).status().message(),
            path + ": file is larger than 1048576 bytes");
  std::filesystem::remove(path);
  std::filesystem::create_symlink("/dev/zero", path);
  EXPECT_EQ(LoadGenerationConfig(dir.path()).status().message(), path + ": not a regular file");
}

}  // namespace
}  // namespace dms
