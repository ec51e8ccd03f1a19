// Soak under faults: many concurrent clients of two tenants (bearer tokens)
// that randomly cancel, disconnect, set short deadlines and send malformed
// requests, all drawing their request ids from a small shared pool so that
// ids collide within and across tenants, against a server whose KV pool is
// squeezed to force preemption, restarted once mid-load.
//
// Asserted: no crash; every well-formed request either completes with the
// tokens it produces alone (greedy) or ends with a defined status (a
// same-tenant id collision: ALREADY_EXISTS); no stream is ever cancelled by
// another stream's cancel; KV blocks and running requests return to zero;
// memory growth stays bounded.
//
// DMS_SOAK_SECONDS (default 20) sets the length; DMS_SOAK_REPORT=path writes
// the counts as JSON (scripts/hardening-report.sh turns them into docs/);
// DMS_SOAK_BACKEND=cuda runs the server on the GPU (scripts/gpu.sh).
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "tests/server/server_harness.h"

namespace dms {
namespace {
using testing::ServerProcess;

struct Counts {
  std::atomic<int64_t> requests{0}, completed{0}, matched{0}, mismatched{0}, cancels{0},
      disconnects{0}, deadlines{0}, malformed{0}, malformed_refused{0}, unavailable{0},
      exhausted{0}, duplicate_ids{0}, cancelled_by_another{0}, other{0};
};

double Env(const char* name, double fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::atof(v) : fallback;
}

std::vector<std::vector<int32_t>> Prompts() {
  std::vector<std::vector<int32_t>> out;
  for (int p = 0; p < 8; ++p) {
    std::vector<int32_t> ids;
    for (int t = 0; t < 20 + 23 * p; ++t) ids.push_back((t * 37 + p * 11) % 250);
    out.push_back(ids);
  }
  return out;
}

v1::GenerateRequest Greedy(const std::vector<int32_t>& prompt, uint32_t max_tokens) {
  v1::GenerateRequest r;
  for (int32_t t : prompt) r.add_prompt_token_ids(t);
  r.set_max_tokens(max_tokens);
  r.set_ignore_eos(true);
  r.mutable_sampling()->set_temperature(0);
  return r;
}

// Reads a stream to the end; returns the status and the tokens.
grpc::Status Drain(grpc::ClientReader<v1::GenerateResponse>* reader, std::vector<int32_t>* ids) {
  v1::GenerateResponse resp;
  while (reader->Read(&resp)) ids->insert(ids->end(), resp.token_ids().begin(), resp.token_ids().end());
  return reader->Finish();
}

TEST(Soak, ManyFaultyClientsAgainstASqueezedRestartingServer) {
  const double seconds = Env("DMS_SOAK_SECONDS", 20);
  const int clients = static_cast<int>(Env("DMS_SOAK_CLIENTS", 24));
  const std::string model = testing::TestDataDir() + "/models/dms-proj-layer-alpha-long";
  const int port = testing::FreePort();
  testing::TempDir tokens;
  testing::WriteFile(tokens.File("tokens"), "tenant-a\ntenant-b\n");
  const std::string listen = "127.0.0.1:" + std::to_string(port);
  // 150 blocks of 16 slots: a few streams' worth, so preemption happens.
  const char* backend_env = std::getenv("DMS_SOAK_BACKEND");
  const std::string backend = backend_env && *backend_env ? backend_env : "cpu";
  std::vector<std::string> args = {"--model",
                                   model,
                                   "--listen",
                                   listen,
                                   "--kv-block-size",
                                   "16",
                                   "--kv-memory",
                                   std::to_string(150 * 2 * 16 * 32 * 4),
                                   "--max-queued",
                                   "64",
                                   "--max-batch-tokens",
                                   "96",
                                   "--drain-timeout",
                                   "2",
                                   "--backend",
                                   backend,
                                   "--auth-token-file",
                                   tokens.File("tokens")};
  // Exact greedy equality across batching needs the exact precision on GPU.
  if (backend == "cuda") args.insert(args.end(), {"--precision", "f32"});
  auto server = std::make_unique<ServerProcess>(args);

  // Reference outputs: each prompt alone, greedy.
  const auto prompts = Prompts();
  const uint32_t kMaxTokens = 24;
  std::vector<std::vector<int32_t>> expected;
  {
    auto stub = server->Stub();
    for (const auto& p : prompts) {
      grpc::ClientContext ctx;
      ctx.AddMetadata("authorization", "Bearer tenant-a");
      std::vector<int32_t> ids;
      ASSERT_TRUE(Drain(stub->Generate(&ctx, Greedy(p, kMaxTokens)).get(), &ids).ok());
      expected.push_back(ids);
    }
  }
  const double rss_start = static_cast<double>(server->RssBytes());
  ASSERT_GT(rss_start, 0);

  Counts c;
  std::atomic<bool> stop{false};
  std::mutex server_mu;  // guards `server` across the restart
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  auto client = [&](int id) {
    std::mt19937 rng(1000 + id);
    auto channel = grpc::CreateChannel(listen, grpc::InsecureChannelCredentials());
    auto stub = v1::Inference::NewStub(channel);
    auto backoff = [&] { std::this_thread::sleep_for(std::chrono::milliseconds(20)); };
    while (!stop.load()) {
      const int p = std::uniform_int_distribution<int>(0, prompts.size() - 1)(rng);
      const int kind = std::uniform_int_distribution<int>(0, 9)(rng);
      ++c.requests;
      const std::string token = id % 2 ? "Bearer tenant-b" : "Bearer tenant-a";
      // Ids from a pool of 6 shared by every client of both tenants.
      const std::string request_id = "soak-" + std::to_string(rng() % 6);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
      ctx.AddMetadata("authorization", token);
      if (kind == 0) {  // malformed: prompt and ids together, or a bad sampling value
        ++c.malformed;
        v1::GenerateRequest bad = Greedy(prompts[p], kMaxTokens);
        bad.set_request_id(request_id);
        if (rng() % 2) bad.set_prompt("both");
        else bad.mutable_sampling()->set_top_p(7);
        std::vector<int32_t> ids;
        grpc::Status st = Drain(stub->Generate(&ctx, bad).get(), &ids);
        if (st.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
          ++c.malformed_refused;
        } else if (st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                   st.error_code() == grpc::StatusCode::CANCELLED) {
          ++c.unavailable;  // the restart (in-flight RPCs are cancelled by the shutdown)
          backoff();
        } else {
          ++c.other;
          ADD_FAILURE() << "malformed request got " << st.error_code() << ": " << st.error_message();
        }
        continue;
      }
      if (kind == 1) {  // short deadline
        ++c.deadlines;
        grpc::ClientContext short_ctx;
        short_ctx.set_deadline(std::chrono::system_clock::now() +
                               std::chrono::milliseconds(std::uniform_int_distribution<int>(1, 40)(rng)));
        short_ctx.AddMetadata("authorization", token);
        v1::GenerateRequest req = Greedy(prompts[p], kMaxTokens);
        req.set_request_id(request_id);
        std::vector<int32_t> ids;
        grpc::Status st = Drain(stub->Generate(&short_ctx, req).get(), &ids);
        if (st.ok() && ids != expected[p]) ++c.mismatched;
        continue;
      }
      v1::GenerateRequest req = Greedy(prompts[p], kMaxTokens);
      req.set_request_id(request_id);
      auto reader = stub->Generate(&ctx, req);
      if (kind == 2 || kind == 3) {  // cancel (or drop the stream) after a few tokens
        (kind == 2 ? c.cancels : c.disconnects)++;
        v1::GenerateResponse resp;
        const int reads = std::uniform_int_distribution<int>(0, 5)(rng);
        for (int i = 0; i < reads && reader->Read(&resp); ++i) {
        }
        ctx.TryCancel();
        std::vector<int32_t> ids;
        Drain(reader.get(), &ids);
        continue;
      }
      std::vector<int32_t> ids;
      grpc::Status st = Drain(reader.get(), &ids);
      if (st.ok()) {
        ++c.completed;
        (ids == expected[p] ? c.matched : c.mismatched)++;
      } else if (st.error_code() == grpc::StatusCode::CANCELLED &&
                 st.error_message() == "cancelled by the client") {
        ++c.cancelled_by_another;  // this client never cancelled this stream
        ADD_FAILURE() << "a stream was cancelled by another stream's cancel";
      } else if (st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                 st.error_code() == grpc::StatusCode::CANCELLED) {
        ++c.unavailable;  // the restart: back off as a real client would
        backoff();
      } else if (st.error_code() == grpc::StatusCode::ALREADY_EXISTS) {
        ++c.duplicate_ids;  // the same tenant has this id in flight
      } else if (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
        ++c.exhausted;
      } else {
        ++c.other;
        ADD_FAILURE() << "unexpected status " << st.error_code() << ": " << st.error_message();
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < clients; ++i) threads.emplace_back(client, i);

  // Restart the server once, half way through, on the same address.
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds / 2));
  int64_t preemptions = 0;
  double first_peak = 0, second_start = 0;
  {
    std::lock_guard<std::mutex> lock(server_mu);
    preemptions += static_cast<int64_t>(
        testing::MetricValue(testing::HttpGet(server->metrics_port(), "/metrics"), "dms_preemptions_total"));
    first_peak = static_cast<double>(server->PeakRssBytes());
    server->Signal(SIGTERM);
    EXPECT_EQ(server->Wait(), 0) << "server did not stop cleanly:\n" << server->Log();
    server = std::make_unique<ServerProcess>(args);
    second_start = static_cast<double>(server->RssBytes());
  }
  std::this_thread::sleep_until(deadline);
  stop = true;
  for (auto& t : threads) t.join();

  // Everything returns to zero, memory growth bounded.
  auto stub = server->Stub();
  bool idle = false;
  for (int i = 0; i < 500 && !idle; ++i) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer tenant-a");
    v1::ServerStatus st;
    idle = stub->GetServerStatus(&ctx, {}, &st).ok() && st.kv_blocks_used() == 0 && st.requests_running() == 0 &&
           st.requests_waiting() == 0;
    if (!idle) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(idle) << "KV blocks or requests left after the soak";
  const std::string scrape = testing::HttpGet(server->metrics_port(), "/metrics");
  preemptions += static_cast<int64_t>(testing::MetricValue(scrape, "dms_preemptions_total"));
  // Growth over each server process's life under load.
  const double rss_end = static_cast<double>(server->PeakRssBytes());
  ASSERT_GT(rss_end, 0);
  ASSERT_GT(second_start, 0);
  EXPECT_LT(first_peak, rss_start + 512.0 * 1024 * 1024) << "resident memory grew by more than 512 MiB";
  EXPECT_LT(rss_end, second_start + 512.0 * 1024 * 1024) << "resident memory grew by more than 512 MiB";
  server->Signal(SIGTERM);
  EXPECT_EQ(server->Wait(), 0);

  EXPECT_EQ(c.mismatched.load(), 0) << "a completed request differed from its solo run";
  EXPECT_EQ(c.other.load(), 0);
  EXPECT_EQ(c.cancelled_by_another.load(), 0);
  EXPECT_GT(c.matched.load(), 0);
  nlohmann::json report = {{"backend", backend},
                           {"seconds", seconds},
                           {"clients", clients},
                           {"requests", c.requests.load()},
                           {"completed", c.completed.load()},
                           {"matched_solo", c.matched.load()},
                           {"mismatched", c.mismatched.load()},
                           {"cancels", c.cancels.load()},
                           {"disconnects", c.disconnects.load()},
                           {"short_deadlines", c.deadlines.load()},
                           {"malformed", c.malformed.load()},
                           {"malformed_refused", c.malformed_refused.load()},
                           {"unavailable_during_restart", c.unavailable.load()},
                           {"resource_exhausted", c.exhausted.load()},
                           {"duplicate_ids", c.duplicate_ids.load()},
                           {"cancelled_by_another", c.cancelled_by_another.load()},
                           {"preemptions", preemptions},
                           {"restarts", 1},
                           {"rss_start_mb", rss_start / 1048576.0},
                           {"rss_peak_end_mb", std::max(first_peak, rss_end) / 1048576.0}};
  std::printf("soak: %s\n", report.dump().c_str());
  if (const char* path = std::getenv("DMS_SOAK_REPORT")) std::ofstream(path) << report.dump(2) << "\n";
}

}  // namespace
}  // namespace dms
