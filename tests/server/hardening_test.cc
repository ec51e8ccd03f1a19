// What an outside probe of the server found (issue 29), each as the probe
// ran it: real sockets, hand-made messages, two tenants. One test per finding;
// the JSON and checkpoint findings live in tests/model/.
#include <google/protobuf/descriptor.pb.h>
#include <gtest/gtest.h>

#include <future>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tests/server/server_harness.h"

namespace dms {
namespace {
using testing::ServerProcess;

std::string ModelDir() { return testing::TestDataDir() + "/models/dms-neuron-w16-long"; }

// A token file with two tenants, "token-a" and "token-b".
struct TwoTenants {
  testing::TempDir dir;
  std::string file = dir.File("tokens");
  TwoTenants() { testing::WriteFile(file, "token-a\ntoken-b\n"); }
};

struct Stream {
  grpc::Status status;
  std::vector<int32_t> ids;
  v1::GenerateResponse last;
};

Stream Generate(v1::Inference::Stub& stub, const v1::GenerateRequest& req, const std::string& token,
                double deadline_s = 60) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::microseconds(static_cast<int64_t>(deadline_s * 1e6)));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  Stream s;
  auto reader = stub.Generate(&ctx, req);
  v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
    s.ids.insert(s.ids.end(), resp.token_ids().begin(), resp.token_ids().end());
    s.last = resp;
  }
  s.status = reader->Finish();
  return s;
}

v1::GenerateRequest Ids(std::vector<int32_t> prompt, uint32_t max_tokens,
                        const std::string& id = "") {
  v1::GenerateRequest req;
  for (int32_t t : prompt) req.add_prompt_token_ids(t);
  req.set_max_tokens(max_tokens);
  req.mutable_sampling()->set_temperature(0);
  req.set_request_id(id);
  return req;
}

grpc::Status HealthCheck(const std::shared_ptr<grpc::Channel>& ch, const std::string& token,
                         grpc::health::v1::HealthCheckResponse* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  grpc::health::v1::HealthCheckRequest req;
  return grpc::health::v1::Health::NewStub(ch)->Check(&ctx, req, resp);
}

// Health Watch calls refused for want of a token, with deadlines of a
// millisecond or two: each was finished twice (refusal, then cancel) and
// gRPC aborted the process.
void FloodRefusedWatches(const std::shared_ptr<grpc::Channel>& ch, int threads, int per_thread) {
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&ch, t, per_thread] {
      auto stub = grpc::health::v1::Health::NewStub(ch);
      for (int i = 0; i < per_thread; ++i) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::microseconds(500 + 500 * ((t + i) % 4)));
        grpc::health::v1::HealthCheckRequest req;
        auto reader = stub->Watch(&ctx, req);
        grpc::health::v1::HealthCheckResponse resp;
        while (reader->Read(&resp)) {
        }
        (void)reader->Finish();
      }
    });
  }
  for (auto& t : ts) t.join();
}

TEST(Hardening, RefusedHealthWatchesWithShortDeadlinesLeaveTheServerUp) {
  TwoTenants tenants;
  ServerProcess server({"--model", ModelDir(), "--auth-token-file", tenants.file, "--auth-health"});
  FloodRefusedWatches(server.Channel(), 8, 250);
  ASSERT_TRUE(server.Alive()) << server.Log();
  grpc::health::v1::HealthCheckResponse resp;
  ASSERT_TRUE(HealthCheck(server.Channel(), "token-a", &resp).ok());
  EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);

  testing::TestCerts certs;
  ServerProcess tls({"--model", ModelDir(), "--auth-token-file", tenants.file, "--auth-health",
                     "--tls-cert", certs.server_cert, "--tls-key", certs.server_key});
  FloodRefusedWatches(certs.Channel(tls.target(), false), 4, 25);
  ASSERT_TRUE(tls.Alive()) << tls.Log();
  EXPECT_TRUE(HealthCheck(certs.Channel(tls.target(), false), "token-b", &resp).ok());
}

// The probe: one long stream with request id "victim-1", then many short
// streams with the same id (refused, or cut by their deadline) whose own
// cancels used to cancel the victim, across tokens too.
TEST(Hardening, ADuplicateRequestIdCannotCancelAnotherStream) {
  TwoTenants tenants;
  ServerProcess server({"--model", ModelDir(), "--auth-token-file", tenants.file});
  auto stub = server.Stub();
  v1::GenerateRequest victim_req = Ids({1, 2, 3, 4}, 600, "victim-1");
  victim_req.set_ignore_eos(true);
  auto victim =
      std::async(std::launch::async, [&] { return Generate(*stub, victim_req, "token-a"); });
  // Wait until the victim is running.
  for (int i = 0; i < 500; ++i) {
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer token-a");
    v1::ServerStatus st;
    if (stub->GetServerStatus(&ctx, {}, &st).ok() && st.generated_tokens() > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // Same tenant, same id: refused, and its end touches nothing.
  Stream dup = Generate(*stub, Ids({5, 6}, 4, "victim-1"), "token-a");
  EXPECT_EQ(dup.status.error_code(), grpc::StatusCode::ALREADY_EXISTS)
      << dup.status.error_message();
  EXPECT_EQ(dup.status.error_message(), "request_id 'victim-1' is already in flight");
  // Another tenant: its own namespace.
  Stream other = Generate(*stub, Ids({5, 6}, 2, "victim-1"), "token-b");
  EXPECT_TRUE(other.status.ok()) << other.status.error_message();
  EXPECT_EQ(other.last.request_id(), "victim-1");
  std::vector<std::thread> attackers;
  for (int t = 0; t < 4; ++t) {
    attackers.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        Generate(*stub, Ids({7, 8}, 50, "victim-1"), t % 2 ? "token-a" : "token-b", 0.002);
      }
    });
  }
  for (auto& t : attackers) t.join();
  Stream v = victim.get();
  ASSERT_TRUE(v.status.ok()) << v.status.error_message();
  EXPECT_EQ(v.last.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(v.ids.size(), 600u);
}

// Server-made request ids are not sequential (nothing to guess from them).
TEST(Hardening, ServerMadeRequestIdsAreNotGuessable) {
  ServerProcess server({"--model", ModelDir()});
  auto stub = server.Stub();
  const std::string a = Generate(*stub, Ids({1, 2}, 1), "").last.request_id();
  const std::string b = Generate(*stub, Ids({1, 2}, 1), "").last.request_id();
  const std::regex shape("req-[0-9a-f]{16}");
  EXPECT_TRUE(std::regex_match(a, shape)) << a;
  EXPECT_TRUE(std::regex_match(b, shape)) << b;
  EXPECT_NE(a, b);
}

// Token B sending token A's session id with A's conversation must neither
// reuse A's cache (learning it guessed right) nor evict it.
TEST(Hardening, SessionsBelongToTheCallerThatMadeThem) {
  TwoTenants tenants;
  ServerProcess server({"--model", ModelDir(), "--auth-token-file", tenants.file});
  auto stub = server.Stub();
  v1::GenerateRequest t1 = Ids({11, 12, 13, 14, 15, 16}, 6);
  t1.set_session_id("conv-a");
  Stream out1 = Generate(*stub, t1, "token-a");
  ASSERT_TRUE(out1.status.ok()) << out1.status.error_message();
  std::vector<int32_t> convo = {11, 12, 13, 14, 15, 16};
  convo.insert(convo.end(), out1.ids.begin(), out1.ids.end());
  convo.push_back(42);
  v1::GenerateRequest guess = Ids(convo, 3);
  guess.set_session_id("conv-a");
  Stream b = Generate(*stub, guess, "token-b");
  ASSERT_TRUE(b.status.ok()) << b.status.error_message();
  EXPECT_EQ(b.last.usage().cached_prompt_tokens(), 0u) << "token B reused token A's session cache";
  Stream a = Generate(*stub, guess, "token-a");
  ASSERT_TRUE(a.status.ok()) << a.status.error_message();
  EXPECT_EQ(a.last.usage().cached_prompt_tokens(), 6u + out1.ids.size() - 1)
      << "A's cache did not survive";
  EXPECT_EQ(a.ids, b.ids);
}

// gRPC used to enable SO_REUSEPORT: a second server started without error
// and took half the connections.
TEST(Hardening, ASecondServerOnTheSamePortFailsWithOneLine) {
  ServerProcess first({"--model", ModelDir()});
  const std::string grpc_addr = "127.0.0.1:" + std::to_string(first.grpc_port());
  const std::string metrics_addr = "127.0.0.1:" + std::to_string(first.metrics_port());
  const std::string bin = testing::BinDir() + "/dms-server --model " + ModelDir();
  testing::CommandResult r =
      testing::RunCommand(bin + " --metrics-listen off --listen " + grpc_addr);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "dms-server: --listen " + grpc_addr +
                       ": address already in use (another server is listening there)\n");
  r = testing::RunCommand(bin + " --listen 127.0.0.1:0 --metrics-listen " + metrics_addr);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "dms-server: --metrics-listen " + metrics_addr +
                       ": address already in use (another server is listening there)\n");
  EXPECT_TRUE(first.Alive());
}

// A request id is echoed in every streamed message: a 4 MB one made 660 MB of
// responses.
TEST(Hardening, RequestIdsAreBounded) {
  ServerProcess server({"--model", ModelDir()});
  auto stub = server.Stub();
  Stream s = Generate(*stub, Ids({1, 2}, 2, std::string(129, 'x')), "");
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.status.error_message(), "request_id is 129 bytes; the limit is 128");
  s = Generate(*stub, Ids({1, 2}, 2, std::string(128, 'x')), "");
  EXPECT_TRUE(s.status.ok()) << s.status.error_message();
}

// Wire bytes for one length-delimited field.
std::string Field(int number, const std::string& bytes) {
  std::string out(1, static_cast<char>(number << 3 | 2));
  size_t n = bytes.size();
  do {
    out += static_cast<char>((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n >>= 7;
  } while (n > 0);
  return out + bytes;
}

// Every line of a JSON-format log is one JSON object.
void ExpectJsonLines(const std::string& log) {
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    EXPECT_TRUE(nlohmann::json::accept(line)) << "not a JSON log line: " << line;
  }
  EXPECT_EQ(log.find("libprotobuf"), std::string::npos) << log;
}

// Invalid UTF-8 in a string field and garbage bytes got UNIMPLEMENTED '' (also
// before authentication) and raw libprotobuf lines on stderr.
TEST(Hardening, MalformedMessagesGetInvalidArgumentNamingTheField) {
  TwoTenants tenants;
  ServerProcess server(
      {"--model", ModelDir(), "--auth-token-file", tenants.file, "--log-format", "json"});
  auto ch = server.Channel();
  const std::string bad = "\xff\xfe";
  auto expect = [&](const std::string& method, const std::string& bytes,
                    const std::string& message) {
    testing::RawCallResult r = testing::RawCall(ch, method, bytes, "token-a");
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << method << ": " << r.status.error_message();
    EXPECT_EQ(r.status.error_message(), message) << method;
  };
  expect("/dms.v1.Inference/Generate", Field(2, bad), "prompt is not valid UTF-8");
  expect("/dms.v1.Inference/Generate", Field(6, "ok") + Field(6, bad),
         "stop[1] is not valid UTF-8");
  expect("/dms.v1.Inference/Chat",
         Field(2, Field(1, "user") + Field(2, "hi")) + Field(2, Field(2, bad)),
         "messages[1].content is not valid UTF-8");
  expect("/dms.v1.Inference/Tokenize", Field(2, Field(2, Field(1, bad))),
         "chat.messages[0].role is not valid UTF-8");
  expect("/dms.v1.Inference/Generate", "\xff\xff\xff\xff",
         "the request is not a valid dms.v1.GenerateRequest message");
  expect("/dms.v1.Inference/GetModelInfo", "\x08\xff\xff",
         "the request is not a valid dms.v1.GetModelInfoRequest message");
  expect("/grpc.health.v1.Health/Check", Field(1, bad), "service is not valid UTF-8");
  expect("/grpc.health.v1.Health/Watch", "\x0a\x05",
         "the request is not a valid grpc.health.v1.HealthCheckRequest message");
  // Authentication comes first.
  testing::RawCallResult r = testing::RawCall(ch, "/dms.v1.Inference/Generate", "\xff\xff\xff\xff");
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << r.status.error_message();
  // The server still serves, and its log stayed JSON.
  EXPECT_TRUE(Generate(*server.Stub(), Ids({1, 2}, 2), "token-a").status.ok());
  ExpectJsonLines(server.Log());

  ServerProcess quiet({"--model", ModelDir(), "--log-level", "off"});
  testing::RawCall(quiet.Channel(), "/dms.v1.Inference/Generate", Field(2, bad));
  testing::RawCall(quiet.Channel(), "/dms.v1.Inference/Generate", "\xff\xff\xff\xff");
  EXPECT_EQ(quiet.Log(), "");
}

// The generated types of one reflection version.
template <typename Service, typename Request, typename Response>
struct ReflectionApi {
  using ServerReflection = Service;
  using ServerReflectionRequest = Request;
  using ServerReflectionResponse = Response;
};
namespace r1 = grpc::reflection::v1;
namespace r1a = grpc::reflection::v1alpha;
using ReflectionV1 =
    ReflectionApi<r1::ServerReflection, r1::ServerReflectionRequest, r1::ServerReflectionResponse>;
using ReflectionV1alpha = ReflectionApi<r1a::ServerReflection, r1a::ServerReflectionRequest,
                                        r1a::ServerReflectionResponse>;

template <typename Reflection>
grpc::Status Reflect(const std::shared_ptr<grpc::Channel>& ch, const std::string& token,
                     const typename Reflection::ServerReflectionRequest& req,
                     typename Reflection::ServerReflectionResponse* resp) {
  auto stub = Reflection::ServerReflection::NewStub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  auto stream = stub->ServerReflectionInfo(&ctx);
  stream->Write(req);
  stream->WritesDone();
  while (stream->Read(resp)) {
  }
  return stream->Finish();
}

// Reflection was served without a token while auth was on, and only as
// v1alpha (grpcurl and newer clients ask for v1).
template <typename Reflection>
void ExpectReflection(const std::shared_ptr<grpc::Channel>& ch) {
  typename Reflection::ServerReflectionRequest req;
  req.set_list_services("");
  typename Reflection::ServerReflectionResponse resp;
  grpc::Status st = Reflect<Reflection>(ch, "", req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  ASSERT_TRUE(Reflect<Reflection>(ch, "token-b", req, &resp).ok());
  std::vector<std::string> names;
  for (const auto& s : resp.list_services_response().service()) names.push_back(s.name());
  EXPECT_NE(std::find(names.begin(), names.end(), "dms.v1.Inference"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "grpc.reflection.v1.ServerReflection"),
            names.end());
  req.set_file_containing_symbol("dms.v1.Inference");
  ASSERT_TRUE(Reflect<Reflection>(ch, "token-b", req, &resp).ok());
  ASSERT_GT(resp.file_descriptor_response().file_descriptor_proto_size(), 0);
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(file.ParseFromString(resp.file_descriptor_response().file_descriptor_proto(
      resp.file_descriptor_response().file_descriptor_proto_size() - 1)));
  EXPECT_EQ(file.name(), "dms/v1/inference.proto");
  req.set_file_containing_symbol("no.such.Symbol");
  ASSERT_TRUE(Reflect<Reflection>(ch, "token-b", req, &resp).ok());
  EXPECT_EQ(resp.error_response().error_code(), static_cast<int>(grpc::StatusCode::NOT_FOUND));
}

TEST(Hardening, ReflectionNeedsATokenAndServesV1AndV1alpha) {
  TwoTenants tenants;
  ServerProcess server({"--model", ModelDir(), "--auth-token-file", tenants.file});
  ExpectReflection<ReflectionV1>(server.Channel());
  ExpectReflection<ReflectionV1alpha>(server.Channel());
}

// Failed authentications were not logged at all.
TEST(Hardening, RefusedCallersAreAuditedWithoutTheirTokens) {
  TwoTenants tenants;
  ServerProcess server({"--model", ModelDir(), "--auth-token-file", tenants.file});
  auto stub = server.Stub();
  for (int i = 0; i < 60; ++i) Generate(*stub, Ids({1}, 1), "wrong-s3cret");
  Generate(*stub, Ids({1}, 1), "");
  const std::string log = server.Log();
  EXPECT_EQ(log.find("wrong-s3cret"), std::string::npos) << "a token reached the log";
  EXPECT_NE(log.find("auth: refused peer=ipv4:127.0.0.1:"), std::string::npos) << log;
  EXPECT_NE(log.find("rpc=Inference/Generate reason=invalid bearer token"), std::string::npos)
      << log;
  size_t lines = 0;
  for (size_t at = log.find("auth: refused"); at != std::string::npos;
       at = log.find("auth: refused", at + 1)) {
    ++lines;
  }
  EXPECT_GE(lines, 10u);
  EXPECT_LE(lines, 20u) << "the audit log is not rate-limited";
}

// dms_decode_tokens_per_second kept its last value when idle,
// dms_kv_compression_ratio its last ratio with nothing cached, and
// dms_build_info said backend="auto".
TEST(Hardening, IdleMetricsAreNotStale) {
  ServerProcess server({"--model", ModelDir()});
  v1::GenerateRequest req =
      Ids({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, 200);
  req.set_ignore_eos(true);
  ASSERT_TRUE(Generate(*server.Stub(), req, "").status.ok());
  std::string scrape = testing::HttpGet(server.metrics_port(), "/metrics");
  EXPECT_GT(testing::MetricValue(scrape, "dms_decode_tokens_per_second"), 0);
  EXPECT_NE(scrape.find("dms_build_info{backend=\"cpu\""), std::string::npos) << scrape;
  scrape = testing::ScrapeUntil(server.metrics_port(), "dms_kv_compression_ratio", 1);
  EXPECT_EQ(testing::MetricValue(scrape, "dms_kv_compression_ratio"), 1)
      << "no entries cached: ratio 1";
  double rate = -1;
  for (int i = 0; i < 140 && rate != 0; ++i) {  // the window is 10 s
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    rate = testing::MetricValue(testing::HttpGet(server.metrics_port(), "/metrics"),
                                "dms_decode_tokens_per_second");
  }
  EXPECT_EQ(rate, 0) << "an idle server still reports a decode rate";
}

// A certificate and key that do not match said "cannot listen there".
TEST(Hardening, AMismatchedCertificateAndKeyIsNamed) {
  testing::TestCerts certs;
  testing::CommandResult r =
      testing::RunCommand(testing::BinDir() + "/dms-server --model " + ModelDir() +
                          " --listen 127.0.0.1:0 --metrics-listen off --tls-cert " +
                          certs.client_cert + " --tls-key " + certs.server_key);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "dms-server: --tls-key is not the private key of --tls-cert's certificate\n");
}

// A tiny random model with the real Qwen3 tokenizer (dms-engine make-model).
class HardeningWithTokenizer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    const testing::CommandResult made =
        testing::RunCommand(testing::BinDir() + "/dms-engine make-model --preset tiny --out " +
                            dir_->File("tiny") + " --tokenizer " + testing::TokenizerDir());
    ASSERT_EQ(made.exit_code, 0) << made.err;
    server_ = new ServerProcess({"--model", dir_->File("tiny")});
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }
  static v1::TokenizeResponse Tokenize(const v1::TokenizeRequest& req, grpc::Status* st) {
    grpc::ClientContext ctx;
    v1::TokenizeResponse resp;
    *st = server_->Stub()->Tokenize(&ctx, req, &resp);
    return resp;
  }
  static testing::TempDir* dir_;
  static ServerProcess* server_;
};
testing::TempDir* HardeningWithTokenizer::dir_ = nullptr;
ServerProcess* HardeningWithTokenizer::server_ = nullptr;

// Tokenize echoed its whole text (a 4 MB request got a 5.5 MB reply) and
// answered for texts no request could hold.
TEST_F(HardeningWithTokenizer, TokenizeNeitherEchoesNorAmplifies) {
  v1::TokenizeRequest req;
  req.set_text("Hello world");
  grpc::Status st;
  v1::TokenizeResponse resp = Tokenize(req, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_GT(resp.token_ids_size(), 0);
  EXPECT_EQ(resp.text(), "");
  v1::ModelInfo info;
  grpc::ClientContext ctx;
  ASSERT_TRUE(server_->Stub()->GetModelInfo(&ctx, {}, &info).ok());
  std::string big;
  for (int64_t i = 0; i <= static_cast<int64_t>(info.max_model_len()); ++i) big += " x";
  req.set_text(big);
  resp = Tokenize(req, &st);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find(", more than the model's context of " +
                                    std::to_string(info.max_model_len())),
            std::string::npos)
      << st.error_message();
}

// `dms tokenize` (Tokenize) split special-token text that Generate reads as
// one special token, though the docs say the ids are exactly what is served.
TEST_F(HardeningWithTokenizer, TokenizeGivesTheIdsGenerateServes) {
  const std::string text = "<|im_start|>user\nHi<|im_end|>";
  v1::TokenizeRequest req;
  req.set_text(text);
  grpc::Status st;
  v1::TokenizeResponse ids = Tokenize(req, &st);
  ASSERT_TRUE(st.ok()) << st.error_message();
  v1::GenerateRequest gen;
  gen.set_prompt(text);
  gen.set_max_tokens(1);
  Stream s = Generate(*server_->Stub(), gen, "");
  ASSERT_TRUE(s.status.ok()) << s.status.error_message();
  EXPECT_EQ(s.last.usage().prompt_tokens(), static_cast<uint32_t>(ids.token_ids_size()));
  req.set_allow_special(false);
  EXPECT_GT(Tokenize(req, &st).token_ids_size(), ids.token_ids_size())
      << "allow_special false splits them";
}

}  // namespace
}  // namespace dms
