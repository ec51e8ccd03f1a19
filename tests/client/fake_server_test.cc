// The dms binary against an in-process stand-in server: the bearer token and
// TLS reach the channel, the closed loop keeps exactly N requests in flight,
// the open-loop cap holds, warm-up is not counted, chat keeps its history and
// /think, and Ctrl-C cancels the stream (generate, chat) or the run (bench).
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "tests/client/child_process.h"
#include "tests/client/fake_inference_server.h"
#include "tests/test_util.h"

namespace dms::testing {
namespace {

CommandResult Dms(const std::string& args) { return RunCommand(BinDir() + "/dms " + args); }

// Polls `done` for up to 20 s.
template <typename Pred>
bool WaitFor(Pred done) {
  for (int i = 0; i < 2000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

TEST(FakeServerTest, BearerTokenIsSentAsMetadata) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  server.service().required_token = "s3cret";
  TempDir dir;
  WriteFile(dir.File("token"), "s3cret\n");
  WriteFile(dir.File("wrong"), "guess");
  const std::string t = " --target " + server.target();
  const CommandResult ok = Dms("info --json --auth-token-file " + dir.File("token") + t);
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(nlohmann::json::parse(ok.out)["model"]["backend"], "fake");
  const CommandResult gen = Dms("generate --prompt-token-ids 1,2 --max-tokens 3 -q --auth-token-file " + dir.File("token") + t);
  EXPECT_EQ(gen.exit_code, 0) << gen.err;
  EXPECT_EQ(gen.out, "tok\n");
  for (const std::string flags : {std::string(""), " --auth-token-file " + dir.File("wrong")}) {
    const CommandResult denied = Dms("info" + flags + t);
    EXPECT_EQ(denied.exit_code, 1);
    EXPECT_EQ(denied.err, "dms: info: GetModelInfo: UNAUTHENTICATED: missing or wrong bearer token\n");
  }
  const CommandResult bench = Dms("bench --num-requests 2 --warmup 0 -q" + t);
  EXPECT_EQ(bench.exit_code, 1);
  EXPECT_EQ(bench.err, "dms: bench: GetModelInfo: UNAUTHENTICATED: missing or wrong bearer token\n");
}

TEST(FakeServerTest, ClosedLoopKeepsExactlyNInFlight) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  server.service().token_delay_ms = 3;
  TempDir dir;
  const CommandResult r = Dms("bench --concurrency 3 --num-requests 12 --warmup 2 --input-len 8 --output-len 20 -q --json " +
                              dir.File("b.json") + " --target " + server.target());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server.service().max_active.load(), 3);
  EXPECT_EQ(server.service().generate_calls.load(), 14);  // 2 warm-up + 12 measured
  const auto j = nlohmann::json::parse(ReadFile(dir.File("b.json")));
  EXPECT_EQ(j["launched"], 12);
  EXPECT_EQ(j["completed"], 12);
  EXPECT_EQ(j["output_tokens"], 240);
  EXPECT_EQ(j["input_tokens"], 96);
  ASSERT_EQ(j["per_request"].size(), 12u);
  for (const auto& req : j["per_request"]) {
    EXPECT_LE(req["ttft"].get<double>(), req["e2e"].get<double>());
    EXPECT_GT(req["ttft"].get<double>(), 0);
    EXPECT_EQ(req["output_tokens"], 20);
  }
  // 20 tokens x 3 ms: the client clock sees at least the server's pacing.
  EXPECT_GE(j["e2e"]["p50"].get<double>(), 0.060);
  EXPECT_GE(j["itl"]["p50"].get<double>(), 0.002);
  EXPECT_EQ(j["itl"]["count"], 12 * 19);
}

TEST(FakeServerTest, OpenLoopCapAndDuration) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  TempDir dir;
  CommandResult r = Dms("bench --request-rate inf --max-concurrency 2 --num-requests 10 --warmup 0 --output-len 10 -q --json " +
                        dir.File("cap.json") + " --target " + server.target());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(server.service().max_active.load(), 2);
  // About 40 requests/s for 1 s: Poisson, so allow a wide band.
  r = Dms("bench --request-rate 40 --duration 1 --warmup 0 --output-len 4 --seed 3 -q --json " + dir.File("d.json") +
          " --target " + server.target());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(ReadFile(dir.File("d.json")));
  EXPECT_GE(j["launched"].get<int>(), 20);
  EXPECT_LE(j["launched"].get<int>(), 65);
  EXPECT_EQ(j["completed"], j["launched"]);
  EXPECT_EQ(j["config"]["mode"], "request_rate");
  EXPECT_DOUBLE_EQ(j["config"]["request_rate"].get<double>(), 40);
  double last_send = 0;
  for (const auto& req : j["per_request"]) last_send = std::max(last_send, req["send_s"].get<double>());
  EXPECT_LT(last_send, 1.0);  // nothing launched after --duration
}

TEST(FakeServerTest, ChatKeepsHistoryAndThinkToggle) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  const CommandResult r = RunCommand(BinDir() + "/dms chat --system sys -q --target " + server.target(),
                                     "hello\n/think off\nsecond\n/reset\n/think\nthird\n/bogus\n/exit\nignored\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "reply1-\n[thinking off]\nreply2-\n[conversation cleared]\n[thinking on]\nreply3-\n");
  EXPECT_EQ(r.err, "unknown command '/bogus' (try /help)\n");
  std::lock_guard<std::mutex> lock(server.service().mu);
  const auto& chats = server.service().chats;
  ASSERT_EQ(chats.size(), 3u);
  EXPECT_EQ(chats[0].messages_size(), 2);  // system, user
  EXPECT_TRUE(chats[0].enable_thinking());
  ASSERT_EQ(chats[1].messages_size(), 4);  // system, user, assistant, user
  EXPECT_EQ(chats[1].messages(2).role(), "assistant");
  EXPECT_EQ(chats[1].messages(2).content(), "reply1-");
  EXPECT_EQ(chats[1].messages(3).content(), "second");
  EXPECT_FALSE(chats[1].enable_thinking());
  EXPECT_EQ(chats[2].messages_size(), 2);  // after /reset
  EXPECT_TRUE(chats[2].enable_thinking());
}

TEST(FakeServerTest, CtrlCCancelsTheStreamNotTheProgram) {
  FakeServer server;
  ASSERT_TRUE(server.ok());
  const std::string dms = BinDir() + "/dms";
  {  // generate: the stream ends, the program reports and exits 130.
    ChildProcess p(dms + " generate --prompt-token-ids 1 --max-tokens 100000 --target " + server.target());
    ASSERT_TRUE(WaitFor([&] { return server.service().active.load() > 0; })) << p.err();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    p.Signal(SIGINT);
    EXPECT_EQ(p.Wait(), 130);
    EXPECT_EQ(p.err().rfind("[cancelled by Ctrl-C after ", 0), 0u) << p.err();
  }
  {  // chat: the reply in progress is cancelled, the next line still runs.
    ChildProcess p(dms + " chat -q --max-tokens 100000 --target " + server.target(), "first\nsecond\n");
    // Ctrl-C once each reply has started to print (the client flushes every
    // piece; a fixed sleep was too short under ThreadSanitizer on two cores).
    ASSERT_TRUE(WaitFor([&] { return p.out().find("reply1-") != std::string::npos; })) << p.err();
    p.Signal(SIGINT);
    ASSERT_TRUE(WaitFor([&] { return p.out().find("reply2-") != std::string::npos; })) << p.err();
    p.Signal(SIGINT);
    EXPECT_EQ(p.Wait(), 0);
    EXPECT_NE(p.out().find("reply1-"), std::string::npos);
    EXPECT_NE(p.out().find("reply2-"), std::string::npos);
    const std::string err = p.err();
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 2) << err;
    EXPECT_NE(err.find("[cancelled after "), std::string::npos) << err;
    std::lock_guard<std::mutex> lock(server.service().mu);
    // The cancelled turn is not kept: the second request holds one message.
    EXPECT_EQ(server.service().chats.back().messages_size(), 1);
  }
  {  // bench: stops launching, cancels what is in flight, still writes results.
    TempDir dir;
    ChildProcess p(dms + " bench --concurrency 2 --num-requests 1000 --warmup 0 --input-len 8 --output-len 4000 -q --json " +
                   dir.File("b.json") + " --target " + server.target());
    ASSERT_TRUE(WaitFor([&] { return server.service().active.load() >= 2; })) << p.err();
    p.Signal(SIGINT);
    EXPECT_EQ(p.Wait(), 130);
    const auto j = nlohmann::json::parse(ReadFile(dir.File("b.json")));
    EXPECT_TRUE(j["interrupted"].get<bool>());
    EXPECT_EQ(j["launched"], 2);
    EXPECT_EQ(j["failed"], 2);
  }
  // Every cancelled stream ended on the server.
  EXPECT_TRUE(WaitFor([&] { return server.service().active.load() == 0; }));
}

// A self-signed certificate for 127.0.0.1 (openssl from Debian).
bool MakeCertificate(const TempDir& dir) {
  const std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                          "-addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout '" +
                          dir.File("key.pem") + "' -out '" + dir.File("cert.pem") + "'";
  return RunCommand(cmd).exit_code == 0;
}

TEST(FakeServerTest, TlsAndMutualTls) {
  TempDir dir;
  if (RunCommand("command -v openssl").exit_code != 0 || !MakeCertificate(dir)) {
    GTEST_SKIP() << "openssl is not available to make a test certificate";
  }
  const std::string cert = ReadFile(dir.File("cert.pem")), key = ReadFile(dir.File("key.pem"));
  {
    grpc::SslServerCredentialsOptions opts;
    opts.pem_key_cert_pairs.push_back({key, cert});
    FakeServer server(grpc::SslServerCredentials(opts));
    ASSERT_TRUE(server.ok());
    const std::string t = " --target " + server.target();
    const CommandResult ok = Dms("info --tls-ca " + dir.File("cert.pem") + t);
    EXPECT_EQ(ok.exit_code, 0) << ok.err;
    const CommandResult named = Dms("health --tls-ca " + dir.File("cert.pem") + " --tls-server-name localhost" + t);
    EXPECT_EQ(named.exit_code, 1);  // the fake has no health service: an RPC error, not a TLS one
    EXPECT_NE(named.err.find("UNIMPLEMENTED"), std::string::npos) << named.err;
    const CommandResult plain = Dms("info" + t);
    EXPECT_EQ(plain.exit_code, 1);
    EXPECT_EQ(plain.err, "dms: cannot reach " + server.target() + ": connection failed (is dms-server running there?)\n");
  }
  {
    grpc::SslServerCredentialsOptions opts(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    opts.pem_key_cert_pairs.push_back({key, cert});
    opts.pem_root_certs = cert;
    FakeServer server(grpc::SslServerCredentials(opts));
    ASSERT_TRUE(server.ok());
    const std::string t = " --target " + server.target() + " --tls-ca " + dir.File("cert.pem");
    const CommandResult mutual = Dms("info --tls-cert " + dir.File("cert.pem") + " --tls-key " + dir.File("key.pem") + t);
    EXPECT_EQ(mutual.exit_code, 0) << mutual.err;
    const CommandResult anonymous = Dms("info" + t);
    EXPECT_EQ(anonymous.exit_code, 1);
    EXPECT_EQ(anonymous.err,
              "dms: cannot reach " + server.target() + ": connection failed (is dms-server running there, with TLS?)\n");
  }
}

}  // namespace
}  // namespace dms::testing
