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

}  // namespace
}  // namespace dms
