// dms-server end to end through real sockets: golden greedy streams,
// batching invariance, cancellation, deadlines, queue overflow, validation,
// health, drain on SIGTERM, metrics.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <sstream>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/server/server_harness.h"

namespace dms {
namespace {
namespace fs = std::filesystem;
using testing::ServerProcess;

struct StreamResult {
  grpc::Status status;
  std::vector<int32_t> ids;
  std::string text;
  v1::GenerateResponse last;
  int messages = 0;
};

StreamResult Generate(v1::Inference::Stub& stub, const v1::GenerateRequest& req,
                      double deadline_s = 120, grpc::ClientContext* ctx_out = nullptr) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(deadline_s * 1000)));
  StreamResult r;
  auto reader = stub.Generate(&ctx, req);
  v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
    r.ids.insert(r.ids.end(), resp.token_ids().begin(), resp.token_ids().end());
    r.text += resp.text();
    r.last = resp;
    ++r.messages;
  }
  r.status = reader->Finish();
  return r;
}

struct Golden {
  std::string dir;
  std::vector<int32_t> prompt, greedy;
};

std::vector<Golden> Goldens(bool shared_only = false) {
  std::vector<Golden> out;
  std::vector<std::string> roots;
  if (!shared_only) roots.push_back(testing::TestDataDir() + "/models");
  if (!testing::SharedFixturesDir().empty()) roots.push_back(testing::SharedFixturesDir() + "/models");
  for (const auto& root : roots) {
    for (const auto& e : fs::directory_iterator(root)) {
      if (!fs::exists(e.path() / "golden.json")) continue;
      auto j = nlohmann::json::parse(testing::ReadFile((e.path() / "golden.json").string()));
      auto t = j["tokens"].get<std::vector<int32_t>>();
      const int p = j["prompt_len"];
      out.push_back({e.path().string(), {t.begin(), t.begin() + p}, {t.begin() + p, t.end()}});
    }
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.dir < b.dir; });
  return out;
}

v1::GenerateRequest GreedyIds(const std::vector<int32_t>& prompt, uint32_t max_tokens) {
  v1::GenerateRequest req;
  for (int32_t t : prompt) req.add_prompt_token_ids(t);
  req.set_max_tokens(max_tokens);
  req.mutable_sampling()->set_temperature(0);
  return req;
}

v1::ServerStatus Status(v1::Inference::Stub& stub) {
  grpc::ClientContext ctx;
  v1::ServerStatus st;
  EXPECT_TRUE(stub.GetServerStatus(&ctx, {}, &st).ok());
  return st;
}

// Polls until the engine has released every KV block (within ~2 s).
bool BlocksFreed(ServerProcess& server) {
  auto stub = server.Stub();
  for (int i = 0; i < 200; ++i) {
    if (Status(*stub).kv_blocks_used() == 0 &&
        testing::MetricValue(testing::HttpGet(server.metrics_port(), "/metrics"),
                             "dms_kv_blocks{state=\"used\"}") == 0) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// Polls until the engine reports some KV block in use (within ~2 s). The
// engine publishes its stats at the end of a step, after that step's tokens
// went out, so the status seen right after the first token may still be the
// one from before the prefill.
bool BlocksInUse(v1::Inference::Stub& stub) {
  for (int i = 0; i < 200; ++i) {
    if (Status(stub).kv_blocks_used() > 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST(ServerE2E, GreedyStreamsEqualTheGoldenTokens) {
  for (const Golden& g : Goldens()) {
    SCOPED_TRACE(g.dir);
    ServerProcess server({"--model", g.dir});
    auto stub = server.Stub();
    StreamResult r = Generate(*stub, GreedyIds(g.prompt, g.greedy.size()));
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.ids, g.greedy);
    EXPECT_EQ(r.last.finish_reason(), v1::FINISH_REASON_LENGTH);
    EXPECT_EQ(r.last.usage().prompt_tokens(), g.prompt.size());
    EXPECT_EQ(r.last.usage().completion_tokens(), g.greedy.size());
    EXPECT_EQ(r.last.kv().logical_tokens(), g.prompt.size() + g.greedy.size() - 1);
    EXPECT_GT(r.last.timing().ttft_ms(), 0);
  }
}

TEST(ServerE2E, SixteenConcurrentStreamsEqualTheirSoloRuns) {
  const Golden g = Goldens().front();
  ServerProcess server({"--model", g.dir, "--max-batch-tokens", "64"});
  auto stub = server.Stub();
  std::vector<v1::GenerateRequest> reqs;
  for (int i = 0; i < 16; ++i) {
    std::vector<int32_t> prompt(g.prompt.begin(), g.prompt.end() - (i * 13) % 100);
    reqs.push_back(GreedyIds(prompt, 20 + i));
  }
  std::vector<StreamResult> solo;
  for (const auto& r : reqs) solo.push_back(Generate(*stub, r));
  std::vector<std::future<StreamResult>> futures;
  for (const auto& r : reqs) {
    futures.push_back(std::async(std::launch::async, [&stub, r] { return Generate(*stub, r); }));
  }
  for (int i = 0; i < 16; ++i) {
    StreamResult r = futures[i].get();
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.ids, solo[i].ids) << "stream " << i;
  }
  EXPECT_TRUE(BlocksFreed(server));
}

TEST(ServerE2E, CancelAndDeadlineFreeTheirBlocks) {
  const Golden g = Goldens().front();
  ServerProcess server({"--model", g.dir});
  auto stub = server.Stub();
  v1::GenerateRequest req = GreedyIds(g.prompt, 3000);
  req.set_ignore_eos(true);
  {
    grpc::ClientContext ctx;
    auto reader = stub->Generate(&ctx, req);
    v1::GenerateResponse resp;
    ASSERT_TRUE(reader->Read(&resp));
    EXPECT_TRUE(BlocksInUse(*stub)) << "a running request shows no KV blocks in use";
    ctx.TryCancel();
    while (reader->Read(&resp)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(BlocksFreed(server)) << "cancel left blocks in use";
  StreamResult r = Generate(*stub, req, /*deadline_s=*/0.3);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_TRUE(BlocksFreed(server)) << "deadline left blocks in use";
  const std::string scrape = testing::HttpGet(server.metrics_port(), "/metrics");
  EXPECT_GE(testing::MetricValue(scrape, "dms_requests_finished_total{reason=\"cancelled\"}"), 2);
}

TEST(ServerE2E, QueueOverflowIsResourceExhausted) {
  const Golden g = Goldens().front();
  ServerProcess server({"--model", g.dir, "--max-running", "1", "--max-queued", "1"});
  auto stub = server.Stub();
  v1::GenerateRequest req = GreedyIds(g.prompt, 2000);
  req.set_ignore_eos(true);
  std::vector<std::future<StreamResult>> futures;
  for (int i = 0; i < 6; ++i) {
    futures.push_back(std::async(std::launch::async, [&stub, req] { return Generate(*stub, req, 3); }));
  }
  int exhausted = 0;
  for (auto& f : futures) {
    StreamResult r = f.get();
    if (r.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++exhausted;
      EXPECT_NE(r.status.error_message().find("queue is full"), std::string::npos);
    }
  }
  EXPECT_GE(exhausted, 3);
}

TEST(ServerE2E, InvalidFieldsAreInvalidArgumentNamingTheField) {
  const Golden g = Goldens().front();
  ServerProcess server({"--model", g.dir});
  auto stub = server.Stub();
  auto expect = [&](v1::GenerateRequest req, grpc::StatusCode code, const std::string& msg) {
    StreamResult r = Generate(*stub, req);
    EXPECT_EQ(r.status.error_code(), code) << msg;
    EXPECT_EQ(r.status.error_message(), msg);
  };
  auto cfg = nlohmann::json::parse(testing::ReadFile(g.dir + "/config.json"));
  const std::string vocab = std::to_string(cfg["vocab_size"].get<int>());
  const int ctx_len = cfg["max_position_embeddings"].get<int>();
  const std::string ctx_s = std::to_string(ctx_len);
  v1::GenerateRequest req;
  expect(req, grpc::StatusCode::INVALID_ARGUMENT, "prompt is empty: give prompt or prompt_token_ids");
  req = GreedyIds({1, 2}, 5);
  req.set_prompt("hello");
  expect(req, grpc::StatusCode::INVALID_ARGUMENT,
         "prompt and prompt_token_ids are both set: give exactly one");
  req = GreedyIds({1, 5000}, 5);
  expect(req, grpc::StatusCode::INVALID_ARGUMENT,
         "prompt_token_ids[1]: token id 5000 is outside the vocabulary [0, " + vocab + ")");
  req = GreedyIds(std::vector<int32_t>(ctx_len, 1), 5);
  expect(req, grpc::StatusCode::INVALID_ARGUMENT,
         "prompt_token_ids has " + ctx_s + " tokens, longer than the model's context of " + ctx_s +
             " tokens (leaving room for one generated token)");
  req = GreedyIds({1, 2}, ctx_len);
  expect(req, grpc::StatusCode::INVALID_ARGUMENT,
         "max_tokens " + ctx_s + " is beyond the context: the prompt has 2 tokens and the model's context is " +
             ctx_s);
  req = GreedyIds({1, 2}, 5);
  req.mutable_sampling()->set_temperature(-1);
  expect(req, grpc::StatusCode::INVALID_ARGUMENT, "sampling.temperature must be >= 0 and finite, got -1");
  req = GreedyIds({1, 2}, 5);
  req.mutable_sampling()->set_top_p(1.5);
  expect(req, grpc::StatusCode::INVALID_ARGUMENT, "sampling.top_p must be in (0, 1], got 1.5");
  req = GreedyIds({1, 2}, 5);
  req.mutable_sampling()->set_top_k(-3);
  expect(req, grpc::StatusCode::INVALID_ARGUMENT,
         "sampling.top_k must be >= 0 (0 or -1 disables it), got -3");
  req = GreedyIds({1, 2}, 5);
  req.mutable_sampling()->set_min_p(2);
  expect(req, grpc::StatusCode::INVALID_ARGUMENT, "sampling.min_p must be in [0, 1], got 2");
  req = GreedyIds({1, 2}, 5);
  req.mutable_sampling()->set_repetition_penalty(0);
  expect(req, grpc::StatusCode::INVALID_ARGUMENT,
         "sampling.repetition_penalty must be > 0 and finite, got 0");
  req = GreedyIds({1, 2}, 5);
  req.mutable_sampling()->set_presence_penalty(5);
  expect(req, grpc::StatusCode::INVALID_ARGUMENT, "sampling.presence_penalty must be in [-2, 2], got 5");
  req = GreedyIds({1, 2}, 5);
  req.mutable_sampling()->set_frequency_penalty(-5);
  expect(req, grpc::StatusCode::INVALID_ARGUMENT, "sampling.frequency_penalty must be in [-2, 2], got -5");
  req = GreedyIds({1, 2}, 5);
  req.set_logprobs(50);
  expect(req, grpc::StatusCode::INVALID_ARGUMENT, "logprobs must be in [0, 20], got 50");
  req = GreedyIds({1, 2}, 5);
  req.add_stop_token_ids(-4);
  expect(req, grpc::StatusCode::INVALID_ARGUMENT,
         "stop_token_ids[0]: -4 is outside the vocabulary [0, " + vocab + ")");
  // Text needs a tokenizer: these fixtures have none.
  req = v1::GenerateRequest();
  req.set_prompt("hello");
  expect(req, grpc::StatusCode::FAILED_PRECONDITION,
         "prompt: this model has no tokenizer (no tokenizer.json in the checkpoint): send prompt_token_ids");
  req = GreedyIds({1, 2}, 5);
  req.add_stop("x");
  expect(req, grpc::StatusCode::FAILED_PRECONDITION,
         "stop: this model has no tokenizer (no tokenizer.json in the checkpoint): send prompt_token_ids");
  grpc::ClientContext ctx;
  v1::TokenizeRequest treq;
  treq.set_text("hi");
  v1::TokenizeResponse tresp;
  EXPECT_EQ(stub->Tokenize(&ctx, treq, &tresp).error_code(), grpc::StatusCode::FAILED_PRECONDITION);
}

TEST(ServerE2E, HealthGoesFromNotServingToServing) {
  const Golden g = Goldens().front();
  // A long warm-up keeps the server NOT_SERVING long enough to observe (a
  // sanitized server is 5-10x slower, so a fifth of it lasts as long).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  const char* warmup_tokens = "600";
#else
  const char* warmup_tokens = "3000";
#endif
  ServerProcess server({"--model", g.dir, "--warmup-tokens", warmup_tokens, "--threads", "1"},
                       /*wait_ready=*/false);
  // Find the port: poll the log for "port N".
  int port = 0;
  for (int i = 0; i < 3000 && port == 0; ++i) {
    const std::string log = server.Log();
    const size_t at = log.find("(port ");
    if (at != std::string::npos) port = std::atoi(log.c_str() + at + 6);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ASSERT_GT(port, 0) << server.Log();
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto check = [&](const std::string& service) {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(service);
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status st = grpc::health::v1::Health::NewStub(channel)->Check(&ctx, req, &resp);
    return st.ok() ? resp.status() : grpc::health::v1::HealthCheckResponse::UNKNOWN;
  };
  EXPECT_EQ(check("dms.v1.Inference"), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
  EXPECT_EQ(check(""), grpc::health::v1::HealthCheckResponse::SERVING);  // live
  ASSERT_TRUE(server.WaitReady());
  EXPECT_EQ(check("dms.v1.Inference"), grpc::health::v1::HealthCheckResponse::SERVING);
}

TEST(ServerE2E, SigtermDrainsInFlightRequestsAndExitsZero) {
  const Golden g = Goldens().front();
  ServerProcess server({"--model", g.dir, "--drain-timeout", "30"});
  auto stub = server.Stub();
  v1::GenerateRequest req = GreedyIds(g.prompt, 300);
  req.set_ignore_eos(true);
  auto inflight = std::async(std::launch::async, [&] { return Generate(*stub, req); });
  while (Status(*stub).requests_running() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  server.Signal(SIGTERM);
  // New work is refused while draining.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  StreamResult late = Generate(*stub, GreedyIds(g.prompt, 5));
  EXPECT_EQ(late.status.error_code(), grpc::StatusCode::UNAVAILABLE);
  StreamResult r = inflight.get();
  EXPECT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.ids.size(), 300u);
  EXPECT_EQ(server.Wait(), 0) << server.Log();
}

TEST(ServerE2E, BadCheckpointIsOneClearLineAndExitOne) {
  testing::TempDir tmp;
  testing::WriteFile(tmp.File("config.json"), "{not json");
  auto r = testing::RunCommand(testing::BinDir() + "/dms-server --model " + tmp.path() +
                               " --listen 127.0.0.1:0 --metrics-listen off");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("dms-server: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("config.json"), std::string::npos) << r.err;
}

TEST(ServerE2E, ModelInfoReportsGeometryDmsAndCapacity) {
  const Golden g = Goldens().front();
  ServerProcess server({"--model", g.dir, "--kv-memory", "64MiB"});
  auto stub = server.Stub();
  grpc::ClientContext ctx;
  v1::GetModelInfoRequest req;
  req.set_context_length(1000);
  v1::ModelInfo info;
  ASSERT_TRUE(stub->GetModelInfo(&ctx, req, &info).ok());
  EXPECT_EQ(info.backend(), "cpu");
  EXPECT_EQ(info.cuda_tuning(), "");  // the CPU backend has no switches
  EXPECT_TRUE(info.dms().enabled());
  EXPECT_GT(info.kv_num_blocks(), 0);
  EXPECT_EQ(info.capacity_context_length(), 1000u);
  EXPECT_GT(info.estimated_max_streams(), 0u);
  EXPECT_FALSE(info.has_tokenizer());
  EXPECT_GT(info.weights_bytes(), 0);
  EXPECT_EQ(info.kv_pool_bytes(), info.kv_num_blocks() * info.kv_bytes_per_block());
  EXPECT_EQ(info.device_memory_used_bytes(), 0);  // CPU backend: no device
}

}  // namespace
}  // namespace dms

namespace dms {
namespace {

// A request that leaves sampling unset gets the checkpoint's
// generation_config.json (here: greedy), GetModelInfo says so, and
// --generation-config ignore restores the plain defaults.
TEST(ServerE2E, UnsetSamplingTakesTheCheckpointsGenerationConfig) {
  const Golden g = Goldens().front();
  testing::TempDir dir;
  const std::string model = dir.File("model");
  fs::copy(g.dir, model, fs::copy_options::recursive);
  testing::WriteFile(model + "/generation_config.json",
                     R"({"do_sample": false, "top_k": 7, "top_p": 0.9})");
  ServerProcess server({"--model", model});
  auto stub = server.Stub();
  v1::GenerateRequest req;
  for (int32_t t : g.prompt) req.add_prompt_token_ids(t);
  req.set_max_tokens(g.greedy.size());
  StreamResult r = Generate(*stub, req);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.ids, g.greedy) << "unset sampling did not take do_sample false";
  grpc::ClientContext ctx;
  v1::ModelInfo info;
  ASSERT_TRUE(stub->GetModelInfo(&ctx, {}, &info).ok());
  EXPECT_EQ(info.default_sampling().temperature(), 0.0f);
  EXPECT_EQ(info.default_sampling().top_k(), 7);
  EXPECT_FLOAT_EQ(info.default_sampling().top_p(), 0.9f);
  EXPECT_NE(server.Log().find("sampling defaults from generation_config.json"), std::string::npos);

  ServerProcess plain({"--model", model, "--generation-config", "ignore"});
  grpc::ClientContext ctx2;
  ASSERT_TRUE(plain.Stub()->GetModelInfo(&ctx2, {}, &info).ok());
  EXPECT_EQ(info.default_sampling().temperature(), 1.0f);
  EXPECT_EQ(info.default_sampling().top_k(), 0);

  testing::WriteFile(model + "/generation_config.json", R"({"temperature": -1})");
  testing::CommandResult bad =
      testing::RunCommand(testing::BinDir() + "/dms-server --model " + model +
                          " --listen 127.0.0.1:0 --metrics-listen off");
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_EQ(
      bad.err.rfind("dms-server: " + model + "/generation_config.json: temperature must be", 0), 0u)
      << bad.err;
}

TEST(ServerE2E, JsonLogsCarryEscapedRequestIdsAndNothingPerToken) {
  const Golden g = Goldens().front();
  ServerProcess server({"--model", g.dir, "--log-format", "json"});
  auto stub = server.Stub();
  v1::GenerateRequest req = GreedyIds(g.prompt, 40);
  req.set_request_id("evil\"id\n{\"level\":\"forged\"}");
  StreamResult r = Generate(*stub, req);
  ASSERT_TRUE(r.status.ok());
  int lines = 0, with_id = 0;
  std::istringstream in(server.Log());
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << "not JSON: " << line;
    EXPECT_NE(j["level"], "forged");
    ++lines;
    // The id arrives as data inside the message, not as a field of its own.
    if (j["msg"].get<std::string>().find("id=evil\"id\n{\"level\":\"forged\"}") != std::string::npos) {
      ++with_id;
    }
  }
  EXPECT_EQ(with_id, 2) << server.Log();  // accepted + finished, not one line per token
  EXPECT_LT(lines, 10);
}

}  // namespace
}  // namespace dms

namespace dms {
namespace {

TEST(ServerE2E, SessionContinuationPrefillsOnlyTheNewTurn) {
  const Golden g = Goldens().front();
  ServerProcess server({"--model", g.dir});
  auto stub = server.Stub();
  v1::GenerateRequest t1 = GreedyIds(g.prompt, 16);
  t1.set_session_id("chat-42");
  StreamResult r1 = Generate(*stub, t1);
  ASSERT_TRUE(r1.status.ok());
  EXPECT_EQ(r1.last.usage().cached_prompt_tokens(), 0u);

  std::vector<int32_t> prompt2 = g.prompt;
  prompt2.insert(prompt2.end(), r1.ids.begin(), r1.ids.end());
  for (int i = 0; i < 9; ++i) prompt2.push_back((i * 29 + 5) % 200);
  const double prefilled_before = testing::MetricValue(testing::HttpGet(server.metrics_port(), "/metrics"),
                                                       "dms_prompt_tokens_total");
  v1::GenerateRequest t2 = GreedyIds(prompt2, 16);
  t2.set_session_id("chat-42");
  StreamResult r2 = Generate(*stub, t2);
  ASSERT_TRUE(r2.status.ok());
  EXPECT_EQ(r2.last.usage().cached_prompt_tokens(), g.prompt.size() + r1.ids.size() - 1);
  EXPECT_EQ(r2.last.usage().prompt_tokens(), prompt2.size());
  const std::string scrape = testing::ScrapeUntil(server.metrics_port(), "dms_session_hits_total", 1);
  EXPECT_EQ(testing::MetricValue(scrape, "dms_session_hits_total"), 1);
  EXPECT_EQ(testing::MetricValue(scrape, "dms_sessions"), 1);
  EXPECT_EQ(testing::MetricValue(scrape, "dms_prompt_tokens_total") - prefilled_before, 10);

  // Re-sending the whole conversation without a session gives the same tokens.
  StreamResult full = Generate(*stub, GreedyIds(prompt2, 16));
  EXPECT_EQ(full.ids, r2.ids);
}

}  // namespace
}  // namespace dms
