// Streaming safetensors writer: header layout, shard planning, a sharded
// round trip through the reader, thread-count independence, and byte-identity
// with a file written by the Python safetensors library (shared fixtures).
#include "engine/model/safetensors_writer.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>

#include "engine/model/safetensors.h"
#include "tests/model/model_test_util.h"
#include "tests/test_util.h"

namespace dms {
namespace {

namespace fs = std::filesystem;
using testing::PatternByte;
using testing::PatternFill;
using testing::TempDir;

std::vector<TensorSpec> MixedSpecs() {
  std::vector<TensorSpec> specs;
  for (int i = 0; i < 25; ++i) {
    DType dt = i % 3 == 0 ? DType::kF32 : (i % 3 == 1 ? DType::kBF16 : DType::kF16);
    specs.push_back({"t." + std::to_string(100 - i), dt, {i % 5 + 1, 7 * (i % 4) + 3}});
  }
  specs.push_back({"empty", DType::kBF16, {0, 4}});
  return specs;
}

TEST(SafetensorsWriterTest, HeaderLayoutMatchesHuggingFace) {
  std::vector<TensorSpec> specs = {{"b", DType::kBF16, {2}}, {"a", DType::kF32, {1, 2}}};
  const std::string h = EncodeSafetensorsHeader(specs, {{"format", "pt"}});
  ASSERT_EQ(h.size() % 8, 0u);
  uint64_t n = 0;
  std::memcpy(&n, h.data(), 8);  // little-endian host
  EXPECT_EQ(n, h.size() - 8);
  const std::string json_text =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]}})";
  EXPECT_EQ(h.substr(8, json_text.size()), json_text);
  EXPECT_EQ(h.substr(8 + json_text.size()), std::string(h.size() - 8 - json_text.size(), ' '));
}

TEST(SafetensorsWriterTest, PlanShardsLikeSavePretrained) {
  std::vector<TensorSpec> specs = {{"a", DType::kF32, {10}},   // 40 B
                                   {"b", DType::kF32, {10}},   // 40
                                   {"c", DType::kF32, {30}},   // 120 > limit: own shard
                                   {"d", DType::kF32, {5}},    // 20
                                   {"e", DType::kF32, {20}}};  // 80
  auto shards = PlanShards(specs, 100);
  ASSERT_EQ(shards.size(), 3u);
  EXPECT_EQ(shards[0], (std::vector<size_t>{0, 1}));
  EXPECT_EQ(shards[1], (std::vector<size_t>{2}));
  EXPECT_EQ(shards[2], (std::vector<size_t>{3, 4}));  // 20 + 80 = 100 fits
  EXPECT_EQ(PlanShards(specs, 1000).size(), 1u);
}

TEST(SafetensorsWriterTest, ShardedRoundTrip) {
  TempDir tmp;
  const auto specs = MixedSpecs();
  SafetensorsWriteOptions opt;
  opt.max_shard_bytes = 400;
  opt.threads = 3;
  opt.chunk_bytes = 24;  // many chunks per tensor
  auto files = WriteSafetensorsCheckpoint(tmp.path(), specs, PatternFill(), opt);
  ASSERT_TRUE(files.ok()) << files.status().message();
  const size_t n_shards = PlanShards(specs, 400).size();
  ASSERT_GT(n_shards, 3u);
  ASSERT_EQ(files->size(), n_shards + 1);
  EXPECT_EQ(files->back(), "model.safetensors.index.json");
  char first[64];
  std::snprintf(first, sizeof(first), "model-00001-of-%05zu.safetensors", n_shards);
  EXPECT_EQ(files->front(), first);

  auto index = nlohmann::json::parse(testing::ReadFile(tmp.File("model.safetensors.index.json")));
  uint64_t total = 0;
  for (const auto& s : specs) total += s.nbytes();
  EXPECT_EQ(index["metadata"]["total_size"], total);
  ASSERT_EQ(index["weight_map"].size(), specs.size());
  for (size_t t = 0; t < specs.size(); ++t) {
    const std::string shard = index["weight_map"][specs[t].name];
    auto file = SafetensorsFile::Open(tmp.File(shard));
    ASSERT_TRUE(file.ok()) << file.status().message();
    EXPECT_EQ((*file)->metadata().at("format"), "pt");
    const TensorView* v = (*file)->Find(specs[t].name);
    ASSERT_NE(v, nullptr) << specs[t].name;
    EXPECT_EQ(v->dtype, specs[t].dtype);
    EXPECT_EQ(v->shape, specs[t].shape);
    ASSERT_EQ(v->nbytes, specs[t].nbytes());
    for (size_t i = 0; i < v->nbytes; ++i)
      ASSERT_EQ(v->data[i], PatternByte(t, i)) << specs[t].name;
  }
  // No temporary files are left behind.
  for (const auto& e : fs::directory_iterator(tmp.path())) {
    EXPECT_NE(e.path().extension(), ".tmp") << e.path();
  }
}

TEST(SafetensorsWriterTest, BytesDoNotDependOnThreadsOrChunking) {
  TempDir a, b;
  const auto specs = MixedSpecs();
  SafetensorsWriteOptions one;
  one.threads = 1;
  SafetensorsWriteOptions many;
  many.threads = 4;
  many.chunk_bytes = 16;
  ASSERT_TRUE(WriteSafetensorsFile(a.File("m.safetensors"), specs, PatternFill(), one).ok());
  ASSERT_TRUE(WriteSafetensorsFile(b.File("m.safetensors"), specs, PatternFill(), many).ok());
  const std::string x = testing::ReadFile(a.File("m.safetensors"));
  EXPECT_GT(x.size(), 1000u);
  EXPECT_EQ(x, testing::ReadFile(b.File("m.safetensors")));
}

TEST(SafetensorsWriterTest, ReportsUnwritablePath) {
  TempDir tmp;
  Status s =
      WriteSafetensorsFile(tmp.File("no/such/dir/m.safetensors"), MixedSpecs(), PatternFill(), {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.message(), tmp.File("no/such/dir/m.safetensors.tmp") +
                             ": cannot create: No such file or directory");
}

// Rewriting a file made by the Python safetensors library (the shared golden
// checkpoints) with this writer reproduces it byte for byte.
TEST(SafetensorsWriterTest, ReproducesPythonSafetensorsFilesExactly) {
  const std::string shared = testing::SharedFixturesDir();
  if (shared.empty() || !fs::is_directory(shared + "/models")) GTEST_SKIP() << "no shared fixtures";
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(shared + "/models")) {
    const std::string path = (entry.path() / "model.safetensors").string();
    if (!fs::exists(path)) continue;
    auto file = SafetensorsFile::Open(path);
    ASSERT_TRUE(file.ok()) << file.status().message();
    std::vector<TensorSpec> specs;
    std::vector<const TensorView*> views;
    for (const auto& [name, view] : (*file)->tensors()) {
      specs.push_back({name, view.dtype, view.shape});
      views.push_back(&view);
    }
    TempDir tmp;
    SafetensorsWriteOptions opt;
    opt.metadata = (*file)->metadata();
    auto copy = [&](size_t t, uint64_t off, size_t n, uint8_t* out) {
      std::memcpy(out, views[t]->data + off, n);
    };
    ASSERT_TRUE(WriteSafetensorsFile(tmp.File("copy.safetensors"), specs, copy, opt).ok());
    EXPECT_TRUE(testing::ReadFile(tmp.File("copy.safetensors")) == testing::ReadFile(path)) << path;
    ++checked;
  }
  EXPECT_GE(checked, 1);
}

}  // namespace
}  // namespace dms
