// dms-server on the CUDA backend (ctest label gpu): the greedy stream of every
// golden fixture equals the reference's greedy tokens (f32 precision, where
// DMS decisions match the float64 reference exactly), GetModelInfo reports
// the GPU memory plan, and /metrics reports GPU memory instead of the
// process. Skips, saying why, where no GPU can be used.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>
#include <thread>
#include <nlohmann/json.hpp>

#include "tests/server/server_harness.h"

namespace dms {
namespace {
namespace fs = std::filesystem;
using testing::ServerProcess;

TEST(ServerCuda, GoldenGreedyStreamsOnTheGpu) {
  {
    // A server that cannot use a GPU exits at once with one line saying why.
    ServerProcess probe({"--model", testing::TestDataDir() + "/models/qwen3-plain", "--backend", "cuda"},
                        /*wait_ready=*/false);
    if (!probe.WaitReady(120)) GTEST_SKIP() << "no CUDA GPU for dms-server: " << probe.Log();
  }
  std::vector<std::string> dirs;
  std::vector<std::string> roots = {testing::TestDataDir() + "/models"};
  if (!testing::SharedFixturesDir().empty()) roots.push_back(testing::SharedFixturesDir() + "/models");
  for (const auto& root : roots)
    for (const auto& e : fs::directory_iterator(root))
      if (fs::exists(e.path() / "golden.json")) dirs.push_back(e.path().string());
  ASSERT_FALSE(dirs.empty());
  for (const std::string& dir : dirs) {
    SCOPED_TRACE(dir);
    auto golden = nlohmann::json::parse(testing::ReadFile(dir + "/golden.json"));
    const auto tokens = golden["tokens"].get<std::vector<int32_t>>();
    const int p = golden["prompt_len"];
    ServerProcess server({"--model", dir, "--backend", "cuda", "--precision", "f32", "--kv-memory", "256MiB"});
    auto stub = server.Stub();
    v1::GenerateRequest req;
    for (int i = 0; i < p; ++i) req.add_prompt_token_ids(tokens[i]);
    req.set_max_tokens(tokens.size() - p);
    req.mutable_sampling()->set_temperature(0);
    grpc::ClientContext ctx;
    auto reader = stub->Generate(&ctx, req);
    v1::GenerateResponse resp;
    std::vector<int32_t> got;
    while (reader->Read(&resp)) got.insert(got.end(), resp.token_ids().begin(), resp.token_ids().end());
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(got, std::vector<int32_t>(tokens.begin() + p, tokens.end()));

    grpc::ClientContext ictx;
    v1::ModelInfo info;
    ASSERT_TRUE(stub->GetModelInfo(&ictx, {}, &info).ok());
    EXPECT_EQ(info.backend(), "cuda");
    EXPECT_EQ(info.cuda_tuning(),
              "fold_norms=on,last_layer_logit_rows=on,cached_kept_keys=on,q_bf16=on,"
              "decode_attention=simt,attention_core=auto,pdl=all");
    EXPECT_GT(info.weights_bytes(), 0);
    EXPECT_GT(info.kv_pool_bytes(), 0);
    EXPECT_GT(info.workspace_bytes(), 0);
    EXPECT_GT(info.device_memory_used_bytes(), 0);
    EXPECT_GT(info.device_memory_total_bytes(), info.device_memory_used_bytes());
    const std::string scrape = testing::HttpGet(server.metrics_port(), "/metrics");
    EXPECT_EQ(scrape.find("device=\"cpu-process\""), std::string::npos);
    EXPECT_NE(scrape.find("dms_device_memory_bytes{device=\"cuda:0"), std::string::npos) << scrape;
  }
}

TEST(ServerCuda, AllocationFailureAtStartIsOneClearLineAndExitNonZero) {
  {
    ServerProcess probe({"--model", testing::TestDataDir() + "/models/qwen3-plain", "--backend", "cuda"},
                        /*wait_ready=*/false);
    if (!probe.WaitReady(120)) GTEST_SKIP() << "no CUDA GPU for dms-server: " << probe.Log();
  }
  // A KV pool far beyond any GPU's memory.
  auto r = testing::RunCommand(testing::BinDir() + "/dms-server --model " + testing::TestDataDir() +
                               "/models/qwen3-plain --backend cuda --kv-memory 100000GiB"
                               " --listen 127.0.0.1:0 --metrics-listen off");
  EXPECT_NE(r.exit_code, 0);
  // Exactly one error line (log lines about listening may precede it), naming the allocation.
  std::istringstream lines(r.err);
  std::vector<std::string> errors;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("dms-server: ", 0) == 0) errors.push_back(line);
  }
  ASSERT_EQ(errors.size(), 1u) << r.err;
  EXPECT_NE(errors[0].find("out of memory"), std::string::npos) << errors[0];
  std::printf("allocation failure: %s\n", errors[0].c_str());
}

// --kv-memory as a fraction is a share of the GPU's memory left after the
// weights and workspace (it was once taken of host memory: larger than the
// GPU, out of memory at start).
TEST(ServerCuda, KvMemoryFractionIsAShareOfTheFreeGpuMemory) {
  ServerProcess probe({"--model", testing::TestDataDir() + "/models/qwen3-plain", "--backend", "cuda",
                       "--kv-memory", "0.5"},
                      /*wait_ready=*/false);
  if (!probe.WaitReady(120)) {
    if (probe.Log().find("backend 'cuda': ") != std::string::npos) GTEST_SKIP() << "no CUDA GPU: " << probe.Log();
    FAIL() << "dms-server --kv-memory 0.5 did not start: " << probe.Log();
  }
  auto stub = probe.Stub();
  grpc::ClientContext ctx;
  v1::ModelInfo info;
  ASSERT_TRUE(stub->GetModelInfo(&ctx, {}, &info).ok());
  const double total = static_cast<double>(info.device_memory_total_bytes());
  ASSERT_GT(total, 0);
  EXPECT_LE(info.kv_pool_bytes(), 0.5 * total);
  EXPECT_GE(info.kv_pool_bytes(), 0.3 * total) << "the pool should take about half the free memory";
  std::printf("--kv-memory 0.5: pool %.2f GB of %.2f GB\n", info.kv_pool_bytes() / 1e9, total / 1e9);
}

// Session continuation on the GPU (issue: decode and capacity): the second
// turn of a session prefills only its new tokens, reports the rest as cached,
// and streams exactly what re-sending the whole conversation streams.
TEST(ServerCuda, SessionContinuationPrefillsOnlyTheNewTurn) {
  {
    ServerProcess probe({"--model", testing::TestDataDir() + "/models/qwen3-plain", "--backend", "cuda"},
                        /*wait_ready=*/false);
    if (!probe.WaitReady(120)) GTEST_SKIP() << "no CUDA GPU for dms-server: " << probe.Log();
  }
  auto greedy = [](const std::vector<int32_t>& prompt, uint32_t max_tokens, const std::string& session) {
    v1::GenerateRequest req;
    for (int32_t t : prompt) req.add_prompt_token_ids(t);
    req.set_max_tokens(max_tokens);
    req.mutable_sampling()->set_temperature(0);
    if (!session.empty()) req.set_session_id(session);
    return req;
  };
  auto generate = [](v1::Inference::Stub& stub, const v1::GenerateRequest& req, v1::GenerateResponse* last) {
    grpc::ClientContext ctx;
    auto reader = stub.Generate(&ctx, req);
    v1::GenerateResponse resp;
    std::vector<int32_t> ids;
    while (reader->Read(&resp)) {
      ids.insert(ids.end(), resp.token_ids().begin(), resp.token_ids().end());
      *last = resp;
    }
    EXPECT_TRUE(reader->Finish().ok());
    return ids;
  };
  int models = 0;
  for (const auto& e : fs::directory_iterator(testing::TestDataDir() + "/models")) {
    if (!fs::exists(e.path() / "golden.json")) continue;
    SCOPED_TRACE(e.path().string());
    ++models;
    auto golden = nlohmann::json::parse(testing::ReadFile((e.path() / "golden.json").string()));
    const auto tokens = golden["tokens"].get<std::vector<int32_t>>();
    const std::vector<int32_t> prompt(tokens.begin(), tokens.begin() + golden["prompt_len"].get<int>());
    ServerProcess server({"--model", e.path().string(), "--backend", "cuda", "--precision", "f32",
                          "--kv-memory", "256MiB"});
    auto stub = server.Stub();
    v1::GenerateResponse last1, last2, last_full;
    const std::vector<int32_t> turn1 = generate(*stub, greedy(prompt, 16, "gpu-chat"), &last1);
    ASSERT_EQ(turn1.size(), 16u);
    EXPECT_EQ(last1.usage().cached_prompt_tokens(), 0u);
    std::vector<int32_t> prompt2 = prompt;
    prompt2.insert(prompt2.end(), turn1.begin(), turn1.end());
    for (int i = 0; i < 9; ++i) prompt2.push_back((i * 29 + 5) % 200);
    const double before = testing::MetricValue(testing::HttpGet(server.metrics_port(), "/metrics"),
                                               "dms_prompt_tokens_total");
    const std::vector<int32_t> turn2 = generate(*stub, greedy(prompt2, 16, "gpu-chat"), &last2);
    EXPECT_EQ(last2.usage().cached_prompt_tokens(), prompt.size() + turn1.size() - 1);
    EXPECT_EQ(last2.usage().prompt_tokens(), prompt2.size());
    const std::string scrape = testing::ScrapeUntil(server.metrics_port(), "dms_session_hits_total", 1);
    EXPECT_EQ(testing::MetricValue(scrape, "dms_session_hits_total"), 1);
    EXPECT_EQ(testing::MetricValue(scrape, "dms_prompt_tokens_total") - before, 10)
        << "the second turn prefills its 9 new tokens and the last reply token only";
    EXPECT_EQ(generate(*stub, greedy(prompt2, 16, ""), &last_full), turn2)
        << "a full re-send streams the same tokens";
  }
  EXPECT_GT(models, 0);
}

}  // namespace
}  // namespace dms
