// `dms-engine info` and `dms-engine make-model`, end to end through the
// built binary, as a user runs them; `info` refuses what dms-server refuses.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <sys/stat.h>

#include <filesystem>

#include "tests/model/bad_checkpoints.h"
#include "tests/test_util.h"

namespace dms {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::RunCommand;
using testing::TempDir;

std::string Engine() {
  const std::string bin = testing::BinDir() + "/dms-engine";
  if (!fs::exists(bin)) throw std::runtime_error(bin + " not found: build the dms-engine target");
  return bin;
}

// Small custom geometry: a few hundred kB per checkpoint.
std::string MakeModel(const std::string& out, const std::string& extra = "") {
  return Engine() + " make-model --out '" + out +
         "' --preset tiny --layers 2 --hidden 64 --heads 4 --kv-heads 2 --head-dim 16"
         " --intermediate 128 --vocab 1024 --window 8 " +
         extra;
}

// `info` with a small stack (recursion over deep input shows as a crash) and
// a time limit (a read that never ends shows as exit 124).
std::string Info(const std::string& dir) {
  return "ulimit -s 1024; timeout 60 " + Engine() + " info --model '" + dir + "'";
}

// dms-server on `dir`, which must refuse it at start (a timeout otherwise).
std::string Server(const std::string& dir) {
  return "ulimit -s 1024; timeout 60 " + testing::BinDir() + "/dms-server --model '" + dir +
         "' --listen 127.0.0.1:0 --metrics-listen off --backend cpu --threads 1";
}

TEST(ModelCliTest, MakeModelThenInfo) {
  TempDir tmp;
  // The real tokenizer: info loads it as dms-server does.
  const std::string tok = testing::TokenizerDir();
  const std::string out = tmp.File("m");
  // Vocabulary as large as the tokenizer's, so it is copied.
  CommandResult made = RunCommand(Engine() + " make-model --out '" + out +
                                  "' --preset tiny --layers 1 --hidden 16 --heads 2 --kv-heads 1"
                                  " --head-dim 8 --intermediate 32 --seed 3 --tokenizer '" +
                                  tok + "'");
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_EQ(made.err, "");
  EXPECT_EQ(made.out.rfind("wrote " + out + ": preset tiny, ", 0), 0u) << made.out;

  CommandResult info = RunCommand(Engine() + " info --model '" + out + "'");
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_EQ(info.err, "");
  auto j = nlohmann::json::parse(info.out);
  EXPECT_EQ(j["config"]["model_type"], "qwen3");
  EXPECT_EQ(j["config"]["hidden_size"], 16);
  EXPECT_EQ(j["config"]["vocab_size"], 151936);
  EXPECT_EQ(j["config"]["tie_word_embeddings"], true);
  EXPECT_EQ(j["config"]["dms_window_size"], 16);
  EXPECT_EQ(j["config"]["dms_alpha_scale"], 100.0);
  // embed 151936*16 + layer (q 16*16, k 8*16, v 8*16, o 16*16, norms 8+8+16+16,
  // mlp 3*32*16) + final norm 16.
  const int64_t params = 151936 * 16 + (256 + 128 + 128 + 256 + 48 + 1536) + 16;
  EXPECT_EQ(j["num_parameters"], params);
  EXPECT_EQ(made.out.find(std::to_string(params) + " parameters") != std::string::npos, true);
  EXPECT_EQ(j["dtypes"]["BF16"], j["num_tensors"]);
  EXPECT_EQ(j["files"][0]["name"], "model.safetensors");
  EXPECT_EQ(j["tokenizer"]["tokenizer.json"], true);
  EXPECT_EQ(j["tokenizer"]["tokenizer_config.json"], true);
}

TEST(ModelCliTest, MakeModelWithoutTokenizerSaysSo) {
  TempDir tmp;
  CommandResult made =
      RunCommand(MakeModel(tmp.File("m"), "--tokenizer '" + tmp.File("none") + "'"));
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_EQ(made.err,
            "dms-engine: make-model: tokenizer not found (" + tmp.File("none") +
                "/tokenizer.json is missing): wrote the checkpoint without tokenizer files\n");
  CommandResult info = RunCommand(Engine() + " info --model '" + tmp.File("m") + "'");
  ASSERT_EQ(info.exit_code, 0) << info.err;
  auto j = nlohmann::json::parse(info.out);
  EXPECT_EQ(j["tokenizer"]["tokenizer.json"], false);
  EXPECT_EQ(j["config"]["vocab_size"], 1024);
}

TEST(ModelCliTest, MakeModelIsDeterministic) {
  TempDir tmp;
  for (const char* name : {"a", "b", "c"}) {
    const std::string seed = std::string(name) == "c" ? "2" : "1";
    const std::string threads = std::string(name) == "b" ? "1" : "2";
    CommandResult r = RunCommand(
        MakeModel(tmp.File(name), "--seed " + seed + " --threads " + threads + " --tokenizer ''"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  const std::string a = testing::ReadFile(tmp.File("a/model.safetensors"));
  ASSERT_GT(a.size(), 100000u);
  EXPECT_TRUE(a == testing::ReadFile(tmp.File("b/model.safetensors")));
  EXPECT_EQ(testing::ReadFile(tmp.File("a/config.json")),
            testing::ReadFile(tmp.File("b/config.json")));
  EXPECT_FALSE(a == testing::ReadFile(tmp.File("c/model.safetensors")));
}

TEST(ModelCliTest, MakeModelShardsAndVariants) {
  TempDir tmp;
  CommandResult r = RunCommand(
      MakeModel(tmp.File("m"), "--max-shard-bytes 100000 --variant proj --tokenizer ''"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(tmp.File("m/model.safetensors.index.json")));
  CommandResult info = RunCommand(Engine() + " info --model '" + tmp.File("m") + "'");
  ASSERT_EQ(info.exit_code, 0) << info.err;
  auto j = nlohmann::json::parse(info.out);
  EXPECT_EQ(j["sharded"], true);
  EXPECT_GT(j["files"].size(), 2u);
  EXPECT_EQ(j["config"]["dms_separate_alpha"], true);

  r = RunCommand(MakeModel(tmp.File("plain"), "--variant none --tied false --tokenizer ''"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  info = RunCommand(Engine() + " info --model '" + tmp.File("plain") + "'");
  ASSERT_EQ(info.exit_code, 0) << info.err;
  j = nlohmann::json::parse(info.out);
  EXPECT_FALSE(j["config"].contains("dms_window_size"));
  EXPECT_EQ(j["config"]["tie_word_embeddings"], false);
}

TEST(ModelCliTest, MakeModelBadArguments) {
  TempDir tmp;
  CommandResult r =
      RunCommand(Engine() + " make-model --out '" + tmp.File("m") + "' --preset huge");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(
      r.err,
      "dms-engine: make-model: unknown preset 'huge' (expected one of tiny, small, qwen3-8b)\n");
  r = RunCommand(MakeModel(tmp.File("m"), "--variant both"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "dms-engine: make-model: --variant must be neuron, proj or none, found 'both'\n");
  r = RunCommand(MakeModel(tmp.File("m"), "--evict-rate 2"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "dms-engine: make-model: evict rate must be in [0, 1], found 2.000000\n");
  testing::WriteFile(tmp.File("occupied"), "x");
  r = RunCommand(MakeModel(tmp.path(), "--tokenizer ''"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "dms-engine: " + tmp.path() + ": already exists and is not empty\n");
}

class InfoBadCheckpointTest : public ::testing::TestWithParam<testing::BadCheckpointCase> {};

TEST_P(InfoBadCheckpointTest, OneLineOnStderrExit1) {
  TempDir tmp;
  const std::string dir = tmp.File("model");
  const std::string expected = GetParam().build(dir);
  CommandResult r = RunCommand(Info(dir));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "dms-engine: " + expected + "\n");
}

INSTANTIATE_TEST_SUITE_P(Cases, InfoBadCheckpointTest,
                         ::testing::ValuesIn(testing::BadCheckpointCases()),
                         [](const auto& info) { return info.param.name; });

// Model directories whose weights load but whose tokenizer (or a file that
// cannot be read at all) dms-server refuses at start.
std::vector<testing::BadCheckpointCase> BadModelDirCases() {
  using testing::SmallConfig;
  using testing::WriteFile;
  using testing::WriteTestCheckpoint;
  return {
      {"BadTokenizerJson",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig());
         WriteFile(d + "/tokenizer.json", "{}");
         return d + "/tokenizer.json: pre_tokenizer: expected Sequence[Split(Regex, Isolated), "
                    "ByteLevel(add_prefix_space=false, use_regex=false)]";
       }},
      {"TokenizerJsonNestedDeep",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig());
         WriteFile(d + "/tokenizer.json",
                   "{\"normalizer\": " + testing::DeeplyNestedJson(100000) + "}");
         return d + "/tokenizer.json: JSON is nested deeper than 64 levels";
       }},
      {"TokenizerConfigNestedDeep",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig());
         WriteFile(d + "/tokenizer.json", "{}");
         WriteFile(d + "/tokenizer_config.json",
                   "{\"x\": " + testing::DeeplyNestedJson(100000) + "}");
         return d + "/tokenizer_config.json: JSON is nested deeper than 64 levels";
       }},
      {"ConfigIsAFifo",
       [](const std::string& d) {
         WriteTestCheckpoint(d, SmallConfig());
         fs::remove(d + "/config.json");
         if (::mkfifo((d + "/config.json").c_str(), 0600) != 0) throw std::runtime_error("mkfifo");
         return d + "/config.json: not a regular file";
       }},
  };
}

INSTANTIATE_TEST_SUITE_P(ModelDir, InfoBadCheckpointTest, ::testing::ValuesIn(BadModelDirCases()),
                         [](const auto& info) { return info.param.name; });

// Both tools give the same line for every refused model directory (the
// server's last line; before it the server may log that it listens).
TEST(ModelCliTest, ServerRefusesWhatInfoRefusesWithTheSameLine) {
  if (!fs::exists(testing::BinDir() + "/dms-server")) GTEST_SKIP() << "dms-server not built";
  std::vector<testing::BadCheckpointCase> cases = testing::BadCheckpointCases();
  for (auto& c : BadModelDirCases()) cases.push_back(std::move(c));
  for (const testing::BadCheckpointCase& c : cases) {
    TempDir tmp;
    const std::string dir = tmp.File("model");
    const std::string expected = c.build(dir);
    CommandResult r = RunCommand(Server(dir));
    EXPECT_EQ(r.exit_code, 1) << c.name << ": " << r.err;
    const std::string line = "dms-server: " + expected + "\n";
    EXPECT_TRUE(r.err.size() >= line.size() &&
                r.err.compare(r.err.size() - line.size(), line.size(), line) == 0)
        << c.name << ": " << r.err;
  }
}

TEST(ModelCliTest, InfoOnSharedFixtureModels) {
  const std::string shared = testing::SharedFixturesDir();
  if (shared.empty() || !fs::is_directory(shared + "/models")) GTEST_SKIP() << "no shared fixtures";
  for (const auto& e : fs::directory_iterator(shared + "/models")) {
    if (!fs::exists(e.path() / "config.json")) continue;
    CommandResult r = RunCommand(Info(e.path().string()));
    ASSERT_EQ(r.exit_code, 0) << e.path() << ": " << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["config"]["model_type"], "qwen3");
    EXPECT_GT(j["num_parameters"].get<int64_t>(), 0);
  }
}

}  // namespace
}  // namespace dms
