// Floods every RPC the server answers (Health Check and Watch, reflection
// v1 and v1alpha, Generate, Chat, Tokenize, GetModelInfo, GetServerStatus)
// with garbage, valid requests under deadlines of a few milliseconds, and
// missing, wrong and right tokens, over plaintext and TLS, with and without
// auth; then the server must be alive, serving, and hold no KV block. CI runs
// it under ASan+UBSan and TSan too (scripts/sanitize.sh).
#include <gtest/gtest.h>

#include <random>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/server/server_harness.h"

namespace dms {
namespace {
using testing::ServerProcess;

std::string ModelDir() { return testing::TestDataDir() + "/models/dms-neuron-w16-long"; }

const char* const kMethods[] = {
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    "/dms.v1.Inference/Generate",
    "/dms.v1.Inference/Chat",
    "/dms.v1.Inference/Tokenize",
    "/dms.v1.Inference/GetModelInfo",
    "/dms.v1.Inference/GetServerStatus",
};

// A request body: a valid one for the method, random bytes, or a valid one
// with a byte flipped.
std::string Body(const std::string& method, std::mt19937& rng) {
  std::string valid;
  if (method.find("Generate") != std::string::npos) {
    v1::GenerateRequest r;
    for (int i = 0; i < 8; ++i) r.add_prompt_token_ids(static_cast<int32_t>(rng() % 256));
    r.set_max_tokens(1 + rng() % 40);
    r.set_ignore_eos(true);
    if (rng() % 2) r.set_request_id("flood-" + std::to_string(rng() % 4));
    valid = r.SerializeAsString();
  } else if (method.find("Chat") != std::string::npos) {
    v1::ChatRequest r;
    auto* m = r.add_messages();
    m->set_role("user");
    m->set_content("hello");
    valid = r.SerializeAsString();
  } else if (method.find("Tokenize") != std::string::npos) {
    v1::TokenizeRequest r;
    r.set_text("hello");
    valid = r.SerializeAsString();
  } else if (method.find("Reflection") != std::string::npos) {
    valid = std::string("\x3a\x00", 2);  // list_services: ""
  } else if (method.find("Health") != std::string::npos) {
    valid = std::string("\x0a\x10") + "dms.v1.Inference";
  }
  switch (rng() % 3) {
    case 0:
      return valid;
    case 1: {
      std::string junk(rng() % 64, '\0');
      for (char& c : junk) c = static_cast<char>(rng());
      return junk;
    }
    default:
      if (!valid.empty()) valid[rng() % valid.size()] ^= static_cast<char>(1 + rng() % 255);
      return valid;
  }
}

void Flood(const std::shared_ptr<grpc::Channel>& channel, const std::vector<std::string>& tokens,
           double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(77 + t);
      while (std::chrono::steady_clock::now() < until) {
        const std::string method = kMethods[rng() % std::size(kMethods)];
        const std::string& token = tokens[rng() % tokens.size()];
        // Mostly deadlines of 0.5-5 ms, sometimes long enough to finish.
        const double deadline = rng() % 4 ? (0.5 + rng() % 45 / 10.0) / 1000 : 2.0;
        testing::RawCall(channel, method, Body(method, rng), token, deadline);
      }
    });
  }
  for (auto& t : threads) t.join();
}

// After the flood: alive, ready, a request completes, no KV block held.
void ExpectServing(ServerProcess& server, const std::shared_ptr<grpc::Channel>& channel,
                   const std::string& token) {
  ASSERT_TRUE(server.Alive()) << server.Log();
  auto stub = v1::Inference::NewStub(channel);
  v1::GenerateRequest req;
  req.add_prompt_token_ids(3);
  req.set_max_tokens(4);
  req.set_ignore_eos(true);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  auto reader = stub->Generate(&ctx, req);
  v1::GenerateResponse resp;
  int tokens = 0;
  while (reader->Read(&resp)) tokens += resp.token_ids_size();
  grpc::Status st = reader->Finish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(tokens, 4);
  bool idle = false;
  for (int i = 0; i < 500 && !idle; ++i) {
    grpc::ClientContext c;
    if (!token.empty()) c.AddMetadata("authorization", "Bearer " + token);
    v1::ServerStatus status;
    idle = stub->GetServerStatus(&c, {}, &status).ok() && status.kv_blocks_used() == 0 &&
           status.requests_running() == 0 && status.requests_waiting() == 0;
    if (!idle) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(idle) << "KV blocks or requests left after the flood";
}

TEST(Flood, PlaintextWithoutAuth) {
  ServerProcess server({"--model", ModelDir()});
  Flood(server.Channel(), {""}, 3);
  ExpectServing(server, server.Channel(), "");
}

TEST(Flood, PlaintextWithAuthOnEveryRpc) {
  testing::TempDir dir;
  testing::WriteFile(dir.File("tokens"), "flood-token\n");
  ServerProcess server(
      {"--model", ModelDir(), "--auth-token-file", dir.File("tokens"), "--auth-health"});
  Flood(server.Channel(), {"", "wrong", "flood-token", "flood-token"}, 3);
  ExpectServing(server, server.Channel(), "flood-token");
}

TEST(Flood, TlsWithAuth) {
  testing::TestCerts certs;
  testing::TempDir dir;
  testing::WriteFile(dir.File("tokens"), "flood-token\n");
  ServerProcess server({"--model", ModelDir(), "--auth-token-file", dir.File("tokens"),
                        "--auth-health", "--tls-cert", certs.server_cert, "--tls-key",
                        certs.server_key});
  auto channel = certs.Channel(server.target(), false);
  Flood(channel, {"", "wrong", "flood-token"}, 3);
  // Plaintext clients against the TLS port: refused handshakes.
  Flood(server.Channel(), {"flood-token"}, 0.5);
  ExpectServing(server, channel, "flood-token");
}

}  // namespace
}  // namespace dms
