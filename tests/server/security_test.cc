// Who gets in, and limits: TLS and mutual TLS (a plaintext client cannot
// connect), bearer tokens (missing or wrong: UNAUTHENTICATED), health exempt
// by flag, and the per-request limits with their exact statuses.
#include <gtest/gtest.h>

#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/server/server_harness.h"

namespace dms {
namespace {
using testing::ServerProcess;

const std::string kModel = "dms-neuron-w16-long";
std::string ModelDir() { return testing::TestDataDir() + "/models/" + kModel; }

using Certs = testing::TestCerts;

grpc::Status Info(std::shared_ptr<grpc::Channel> ch, const std::string& token = "") {
  auto stub = v1::Inference::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  v1::ModelInfo info;
  return stub->GetModelInfo(&ctx, {}, &info);
}

grpc::Status Health(std::shared_ptr<grpc::Channel> ch) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  return grpc::health::v1::Health::NewStub(ch)->Check(&ctx, req, &resp);
}

std::shared_ptr<grpc::Channel> TlsChannel(const ServerProcess& s, const Certs& c, bool client_cert) {
  return c.Channel(s.target(), client_cert);
}

TEST(Security, TlsRefusesPlaintextClients) {
  Certs c;
  ServerProcess server({"--model", ModelDir(), "--tls-cert", c.server_cert, "--tls-key", c.server_key});
  EXPECT_TRUE(Info(TlsChannel(server, c, false)).ok());
  grpc::Status plain = Info(server.Channel());
  EXPECT_EQ(plain.error_code(), grpc::StatusCode::UNAVAILABLE) << plain.error_message();
}

TEST(Security, MutualTlsRequiresAClientCertificate) {
  Certs c;
  ServerProcess server({"--model", ModelDir(), "--tls-cert", c.server_cert, "--tls-key", c.server_key,
                        "--tls-client-ca", c.ca});
  EXPECT_TRUE(Info(TlsChannel(server, c, true)).ok());
  EXPECT_FALSE(Info(TlsChannel(server, c, false)).ok());
  EXPECT_FALSE(Info(server.Channel()).ok());
}

TEST(Security, BearerTokensAreRequiredAndHealthIsExemptByDefault) {
  testing::TempDir tmp;
  testing::WriteFile(tmp.File("tokens"), "# clients\nsecret-one\n  secret-two  \n");
  ServerProcess server({"--model", ModelDir(), "--auth-token-file", tmp.File("tokens")});
  auto ch = server.Channel();
  grpc::Status none = Info(ch);
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(none.error_message(), "missing 'authorization: Bearer <token>' metadata");
  grpc::Status wrong = Info(ch, "secret-on");
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(wrong.error_message(), "invalid bearer token");
  EXPECT_TRUE(Info(ch, "secret-one").ok());
  EXPECT_TRUE(Info(ch, "secret-two").ok());
  EXPECT_TRUE(Health(ch).ok());
  // Streams are refused too, before any work.
  auto stub = v1::Inference::NewStub(ch);
  grpc::ClientContext ctx;
  v1::GenerateRequest req;
  req.add_prompt_token_ids(1);
  auto reader = stub->Generate(&ctx, req);
  v1::GenerateResponse resp;
  EXPECT_FALSE(reader->Read(&resp));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // Secrets never reach the log.
  EXPECT_EQ(server.Log().find("secret"), std::string::npos) << server.Log();
}

TEST(Security, HealthNeedsTheTokenWithAuthHealth) {
  testing::TempDir tmp;
  testing::WriteFile(tmp.File("tokens"), "t0k3n\n");
  ServerProcess server({"--model", ModelDir(), "--auth-token-file", tmp.File("tokens"), "--auth-health"});
  EXPECT_EQ(Health(server.Channel()).error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

grpc::Status GenerateStatus(v1::Inference::Stub& stub, const v1::GenerateRequest& req) {
  grpc::ClientContext ctx;
  auto reader = stub.Generate(&ctx, req);
  v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
  }
  return reader->Finish();
}

TEST(Security, RequestLimitsAnswerWithClearStatuses) {
  ServerProcess server({"--model", ModelDir(), "--max-prompt-tokens", "50", "--max-tokens-limit", "20",
                        "--max-message-bytes", "2000", "--rate-limit", "2", "--rate-burst", "6"});
  auto stub = server.Stub();
  auto expect = [&](const v1::GenerateRequest& req, grpc::StatusCode code, const std::string& msg) {
    grpc::Status st = GenerateStatus(*stub, req);
    EXPECT_EQ(st.error_code(), code) << st.error_message();
    if (!msg.empty()) {
      EXPECT_EQ(st.error_message(), msg);
    }
  };
  v1::GenerateRequest req;
  for (int i = 0; i < 60; ++i) req.add_prompt_token_ids(i);
  expect(req, grpc::StatusCode::INVALID_ARGUMENT, "prompt_token_ids has 60 tokens; this server's limit is 50");
  req.Clear();
  req.add_prompt_token_ids(1);
  req.set_max_tokens(21);
  expect(req, grpc::StatusCode::INVALID_ARGUMENT, "max_tokens 21 is over this server's limit of 20");
  req.Clear();
  for (int i = 0; i < 3000; ++i) req.add_prompt_token_ids(150);  // 2-byte varints: 6 KB on the wire
  expect(req, grpc::StatusCode::RESOURCE_EXHAUSTED, "");
  // Rate: a burst of 6, refilled at 2/s; 3 requests above were counted or refused
  // before the limiter; hammer until RESOURCE_EXHAUSTED shows up.
  req.Clear();
  req.add_prompt_token_ids(1);
  req.set_max_tokens(1);
  int limited = 0;
  for (int i = 0; i < 12; ++i) {
    grpc::Status st = GenerateStatus(*stub, req);
    if (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++limited;
      EXPECT_NE(st.error_message().find("rate limit"), std::string::npos);
    }
  }
  EXPECT_GE(limited, 4);
}

TEST(Security, ConcurrentStreamsPerPeerAreCapped) {
  ServerProcess server({"--model", ModelDir(), "--max-streams-per-peer", "2"});
  auto stub = server.Stub();
  v1::GenerateRequest req;
  for (int i = 0; i < 20; ++i) req.add_prompt_token_ids(i);
  req.set_max_tokens(400);
  req.set_ignore_eos(true);
  std::vector<std::future<grpc::Status>> fs;
  for (int i = 0; i < 5; ++i) {
    fs.push_back(std::async(std::launch::async, [&stub, req] { return GenerateStatus(*stub, req); }));
  }
  int refused = 0;
  for (auto& f : fs) {
    grpc::Status st = f.get();
    if (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++refused;
      EXPECT_EQ(st.error_message(), "too many concurrent streams from this client (limit 2)");
    } else {
      EXPECT_TRUE(st.ok()) << st.error_message();
    }
  }
  EXPECT_GE(refused, 1);
  // Slots come back when streams end.
  req.set_max_tokens(2);
  EXPECT_TRUE(GenerateStatus(*stub, req).ok());
}

TEST(Security, BadTlsAndAuthFlagsAreOneClearLine) {
  testing::TempDir tmp;
  auto run = [&](const std::string& flags) {
    return testing::RunCommand(testing::BinDir() + "/dms-server --model " + ModelDir() +
                               " --listen 127.0.0.1:0 --metrics-listen off " + flags);
  };
  auto r = run("--tls-cert " + tmp.File("nope.pem"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "dms-server: TLS needs both --tls-cert and --tls-key\n");
  testing::WriteFile(tmp.File("empty"), "# nothing\n");
  r = run("--auth-token-file " + tmp.File("empty"));
  EXPECT_EQ(r.err, "dms-server: --auth-token-file " + tmp.File("empty") + ": no tokens in the file\n");
}

}  // namespace
}  // namespace dms
