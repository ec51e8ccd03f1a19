// build/bin/dms against a real build/bin/dms-server on loopback: health,
// info, generate, a bench sweep whose counts equal the server's /metrics
// counters (every TTFT <= its E2E, valid SVG figures), and on a tiny model
// with the real tokenizer: tokenize, chat, JSONL and needle datasets, and
// `dms eval needle` end to end (its accuracy on random weights means nothing).
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/client/xml_check.h"
#include "tests/server/server_harness.h"
#include "tests/test_util.h"

namespace dms::testing {
namespace {

CommandResult Dms(const std::string& args) { return RunCommand(BinDir() + "/dms " + args); }

// The server counters bench results are compared with.
struct Counters {
  double finished_length = 0, finished_stop = 0, prompt_tokens = 0, generation_tokens = 0, ttft_count = 0;
};

Counters Scrape(const ServerProcess& server) {
  const std::string s = HttpGet(server.metrics_port(), "/metrics");
  Counters c;
  c.finished_length = MetricValue(s, "dms_requests_finished_total{reason=\"length\"}");
  c.finished_stop = MetricValue(s, "dms_requests_finished_total{reason=\"stop\"}");
  c.prompt_tokens = MetricValue(s, "dms_prompt_tokens_total");
  c.generation_tokens = MetricValue(s, "dms_generation_tokens_total");
  c.ttft_count = MetricValue(s, "dms_time_to_first_token_seconds_count");
  return c;
}

std::vector<nlohmann::json> Runs(const nlohmann::json& j) {
  if (!j.contains("runs")) return {j};
  return std::vector<nlohmann::json>(j["runs"].begin(), j["runs"].end());
}

class ClientE2eTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess({"--model", TestDataDir() + "/models/dms-neuron-w16-long", "--max-running", "8"});
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static std::string T() { return " --target " + server_->target(); }
  static ServerProcess* server_;
};
ServerProcess* ClientE2eTest::server_ = nullptr;

TEST_F(ClientE2eTest, HealthInfoGenerate) {
  CommandResult r = Dms("health" + T());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  r = Dms("health --live" + T());
  EXPECT_EQ(r.exit_code, 0) << r.err;

  r = Dms("info --json" + T());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto info = nlohmann::json::parse(r.out);
  EXPECT_EQ(info["model"]["vocab_size"], 256);
  EXPECT_FALSE(info["model"]["has_tokenizer"].get<bool>());
  EXPECT_TRUE(info["server"]["ready"].get<bool>());
  r = Dms("info" + T());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("geometry   2 layers, hidden 64"), std::string::npos) << r.out;

  r = Dms("generate --prompt-token-ids 5,6,7,8 --max-tokens 6 --ignore-eos --temperature 0 --json" + T());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto g = nlohmann::json::parse(r.out);
  EXPECT_EQ(g["token_ids"].size(), 6u);
  EXPECT_EQ(g["finish_reason"], "length");
  EXPECT_EQ(g["usage"]["prompt_tokens"], 4);
  EXPECT_EQ(g["usage"]["completion_tokens"], 6);
  EXPECT_LE(g["client"]["ttft_s"].get<double>(), g["client"]["e2e_s"].get<double>());
  EXPECT_GT(g["server"]["ttft_ms"].get<double>(), 0);

  // Greedy is deterministic: the plain output lists the same ids.
  r = Dms("generate --prompt-token-ids 5,6,7,8 --max-tokens 6 --ignore-eos --temperature 0" + T());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string ids;
  for (const auto& id : g["token_ids"]) ids += (ids.empty() ? "" : " ") + std::to_string(id.get<int>());
  EXPECT_EQ(r.out, ids + "\n");
  EXPECT_EQ(r.err.rfind("[4 prompt + 6 tokens in ", 0), 0u) << r.err;

  // Text needs a tokenizer, which this checkpoint lacks: one line, exit 1.
  r = Dms("generate hello" + T());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("dms: generate: stream: FAILED_PRECONDITION: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

TEST_F(ClientE2eTest, BenchCountsMatchServerMetrics) {
  TempDir dir;
  const Counters before = Scrape(*server_);
  CommandResult r = Dms("bench --concurrency 1,4 --num-requests 8 --input-len 16:48 --output-len 4:12 --warmup 0 "
                        "--goodput ttft=5,tpot=5 --json " + dir.File("sweep.json") + " --csv " + dir.File("sweep.csv") +
                        " --plot-dir " + dir.File("plots") + T());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("dms bench: concurrency=4"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("server TTFT"), std::string::npos);
  r = Dms("bench --request-rate 30 --burstiness 0.5 --num-requests 6 --input-len 20 --output-len 5 --warmup 0 -q --json " +
          dir.File("rate.json") + T());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const Counters after = Scrape(*server_);

  int64_t completed = 0, input = 0, output = 0;
  const auto sweep = nlohmann::json::parse(ReadFile(dir.File("sweep.json")));
  EXPECT_EQ(sweep["sweep"], "concurrency");
  EXPECT_EQ(sweep["values"], nlohmann::json({1, 4}));
  std::vector<nlohmann::json> runs = Runs(sweep);
  ASSERT_EQ(runs.size(), 2u);
  runs.push_back(nlohmann::json::parse(ReadFile(dir.File("rate.json"))));
  for (const auto& run : runs) {
    SCOPED_TRACE(run["label"].get<std::string>());
    EXPECT_EQ(run["failed"], 0) << run["errors"];
    EXPECT_EQ(run["completed"], run["launched"]);
    for (const char* m : {"ttft", "tpot", "itl", "e2e"}) {
      for (const char* q : {"mean", "p50", "p90", "p99"}) EXPECT_TRUE(run[m][q].is_number()) << m << " " << q;
      EXPECT_LE(run[m]["p50"].get<double>(), run[m]["p99"].get<double>() + 1e-12);
    }
    EXPECT_GT(run["throughput"]["output_tokens_per_s"].get<double>(), 0);
    EXPECT_TRUE(run["server"]["ttft"]["p50"].is_number());
    completed += run["completed"].get<int64_t>();
    input += run["input_tokens"].get<int64_t>();
    output += run["output_tokens"].get<int64_t>();
    int64_t run_output = 0;
    for (const auto& req : run["per_request"]) {
      const double ttft = req["ttft"], e2e = req["e2e"];
      EXPECT_GT(ttft, 0);
      EXPECT_LE(ttft, e2e);
      // The client's clock brackets the server's: send before arrival, receipt after the write.
      EXPECT_GE(ttft + 0.002, req["server_ttft"].get<double>());
      EXPECT_GE(e2e + 0.002, req["server_e2e"].get<double>());
      EXPECT_GE(req["output_tokens"].get<int>(), 4);
      EXPECT_LE(req["output_tokens"].get<int>(), 12);
      run_output += req["output_tokens"].get<int64_t>();
    }
    EXPECT_EQ(run_output, run["output_tokens"].get<int64_t>());
  }
  EXPECT_EQ(completed, 22);
  // Random prompts ignore EOS, so every request ends by length.
  EXPECT_EQ(after.finished_length - before.finished_length, completed);
  EXPECT_EQ(after.finished_stop - before.finished_stop, 0);
  EXPECT_EQ(after.ttft_count - before.ttft_count, completed);
  EXPECT_EQ(after.prompt_tokens - before.prompt_tokens, input);
  EXPECT_EQ(after.generation_tokens - before.generation_tokens, output);

  const std::string csv = ReadFile(dir.File("sweep.csv"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3);  // header + 2 loads
  for (const char* name : {"latency_throughput.svg", "latency_cdf.svg"}) {
    XmlElementCount counts;
    EXPECT_EQ(CheckXml(ReadFile(dir.File(std::string("plots/") + name)), &counts), "") << name;
    EXPECT_EQ(counts.root, "svg");
    EXPECT_EQ(counts.by_name["polyline"], std::string(name) == "latency_cdf.svg" ? 8 : 12) << name;
  }
}

TEST_F(ClientE2eTest, WarmupIsNotCounted) {
  TempDir dir;
  const Counters before = Scrape(*server_);
  const CommandResult r = Dms("bench --concurrency 2 --num-requests 3 --warmup 2 --input-len 8 --output-len 3 --json " +
                              dir.File("w.json") + T());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.rfind("warm-up: 2 requests, 0 failed", 0), 0u) << r.err;
  const auto j = nlohmann::json::parse(ReadFile(dir.File("w.json")));
  EXPECT_EQ(j["completed"], 3);
  EXPECT_EQ(j["config"]["warmup_requests"], 2);
  EXPECT_EQ(Scrape(*server_).finished_length - before.finished_length, 5);  // the server saw all five
}

// A tiny random model with the real Qwen3 tokenizer (dms-engine make-model).
class TokenizerModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    const CommandResult made = RunCommand(BinDir() + "/dms-engine make-model --preset tiny --out " + dir_->File("tiny") +
                                          " --tokenizer " + TokenizerDir());
    ASSERT_EQ(made.exit_code, 0) << made.err;
    server_ = new ServerProcess({"--model", dir_->File("tiny")});
  }
  static void TearDownTestSuite() {
    delete server_;
    delete dir_;
  }
  static std::string T() { return " --target " + server_->target(); }
  static TempDir* dir_;
  static ServerProcess* server_;
};
TempDir* TokenizerModelTest::dir_ = nullptr;
ServerProcess* TokenizerModelTest::server_ = nullptr;

TEST_F(TokenizerModelTest, TokenizeGenerateChat) {
  CommandResult r = Dms("tokenize 'Hello world' --json" + T());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["token_ids"], nlohmann::json({9707, 1879}));  // Qwen3: "Hello", " world"
  r = Dms("tokenize Hi --chat --no-think --show-text" + T());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("<|im_start|>assistant\n<think>\n\n</think>\n\n"), std::string::npos) << r.out;

  r = Dms("generate 'The weather today' --max-tokens 5 --ignore-eos --seed 1" + T());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.rfind("[3 prompt + 5 tokens in ", 0), 0u) << r.err;

  r = RunCommand(BinDir() + "/dms chat --max-tokens 4 --ignore-eos" + T(), "Hi there\n/think off\nAgain\n");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("[thinking off]"), std::string::npos);
  std::istringstream err(r.err);
  std::string line;
  int summaries = 0;
  while (std::getline(err, line)) summaries += line.find("tokens in") != std::string::npos;
  EXPECT_EQ(summaries, 2) << r.err;
}

TEST_F(TokenizerModelTest, BenchTextDatasets) {
  TempDir dir;
  WriteFile(dir.File("p.jsonl"),
            "{\"prompt\": \"Once upon a time\", \"max_tokens\": 3}\n"
            "{\"messages\": [{\"role\": \"user\", \"content\": \"Name a colour.\"}], \"enable_thinking\": false}\n"
            "{\"prompt_token_ids\": [9707, 1879]}\n");
  CommandResult r = Dms("bench --dataset jsonl --dataset-path " + dir.File("p.jsonl") +
                        " --num-requests 6 --concurrency 2 --output-len 4 --warmup 0 -q --json " + dir.File("j.json") + T());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(ReadFile(dir.File("j.json")));
  EXPECT_EQ(j["completed"], 6);
  for (const auto& req : j["per_request"]) EXPECT_LE(req["ttft"].get<double>(), req["e2e"].get<double>());

  r = Dms("bench --dataset needle --input-len 300 --num-requests 2 --output-len 3 --warmup 0 -q --json " +
          dir.File("n.json") + T());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(ReadFile(dir.File("n.json")));
  EXPECT_EQ(j["completed"], 2);
  for (const auto& req : j["per_request"]) {
    EXPECT_LE(req["prompt_tokens"].get<int>(), 300);
    EXPECT_GE(req["prompt_tokens"].get<int>(), 290);
  }
}

TEST_F(TokenizerModelTest, EvalNeedleRunsEndToEnd) {
  TempDir dir;
  // Sanitized builds run the CPU engine without its AVX2 kernels and 5-10x
  // slower (146-165 s for both lengths under TSan): one length there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  const std::string lengths = "128";
  const size_t num_lengths = 1;
#else
  const std::string lengths = "128,256";
  const size_t num_lengths = 2;
#endif
  const CommandResult r = Dms("eval needle --lengths " + lengths +
                              " --max-tokens-no-think 6 --max-tokens-think 10 -q --json " + dir.File("needle.json") +
                              T());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Needle in a haystack: \"The capital of Freedonia is Silverton.\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(num_lengths == 2 ? "256 think" : "128 think"), std::string::npos) << r.out;
  const auto j = nlohmann::json::parse(ReadFile(dir.File("needle.json")));
  ASSERT_EQ(j["cases"].size(), num_lengths * 6);  // lengths x 3 depths x 2 modes
  for (const auto& c : j["cases"]) {
    EXPECT_TRUE(c["ran"].get<bool>()) << c.dump();
    EXPECT_LE(c["prompt_tokens"].get<int>(), c["length"].get<int>());
    EXPECT_GE(c["prompt_tokens"].get<int>(), c["length"].get<int>() - 8);  // think mode's template is shorter
    EXPECT_LE(c["ttft_s"].get<double>(), c["e2e_s"].get<double>());
    EXPECT_GT(c["compression_ratio"].get<double>(), 0);
    EXPECT_EQ(c["correct"].get<bool>(), c["answer"].get<std::string>().find("Silverton") != std::string::npos);
  }
  ASSERT_EQ(j["summary"].size(), num_lengths * 2);
  EXPECT_EQ(j["summary"][0]["length"], 128);
  EXPECT_EQ(j["summary"][0]["mode"], "no-think");
  EXPECT_EQ(j["summary"][0]["ran"], 3);
  EXPECT_TRUE(j["summary"][num_lengths * 2 - 1]["decode_tokens_per_s"].is_number());
}

TEST_F(TokenizerModelTest, LongerThanTheContextIsSkippedWithANote) {
  // The tiny preset's context is 40960 tokens.
  const CommandResult r = Dms("eval needle --lengths 64K --modes no-think --depths 50" + T());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("skipped: 65536 prompt + 128 reply tokens exceed the context of 40960"), std::string::npos)
      << r.err;
}

TEST(ClientSecurityTest, TokenAndTlsAgainstTheRealServer) {
  TempDir dir;
  WriteFile(dir.File("tokens"), "# clients\ns3cret-token\n");
  WriteFile(dir.File("mine"), "s3cret-token\n");
  std::vector<std::string> args = {"--model", TestDataDir() + "/models/dms-neuron-w0-gqa1", "--auth-token-file",
                                   dir.File("tokens")};
  const bool tls = RunCommand("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
                              "-addext subjectAltName=IP:127.0.0.1 -keyout '" + dir.File("key.pem") + "' -out '" +
                              dir.File("cert.pem") + "'").exit_code == 0;
  if (tls) args.insert(args.end(), {"--tls-cert", dir.File("cert.pem"), "--tls-key", dir.File("key.pem")});
  ServerProcess server(args);
  std::string t = " --target " + server.target() + (tls ? " --tls-ca " + dir.File("cert.pem") : "");
  // Health is exempt from the token by default (probes carry no secrets).
  CommandResult r = Dms("health" + t);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Dms("generate --prompt-token-ids 1,2 --max-tokens 3 -q" + t);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err.rfind("dms: generate: stream: UNAUTHENTICATED: ", 0), 0u) << r.err;
  t += " --auth-token-file " + dir.File("mine");
  r = Dms("generate --prompt-token-ids 1,2 --max-tokens 3 --ignore-eos -q" + t);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = Dms("bench --num-requests 4 --concurrency 2 --input-len 8 --output-len 3 --warmup 1 -q --json " +
          dir.File("b.json") + t);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(ReadFile(dir.File("b.json")))["completed"], 4);
  if (tls) {  // a plaintext client cannot talk to a TLS server
    r = Dms("info --target " + server.target() + " --auth-token-file " + dir.File("mine"));
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_EQ(r.err, "dms: cannot reach " + server.target() + ": connection failed (is dms-server running there?)\n");
  }
}

// --kv-policy / --compression-ratio reach the server from bench and generate:
// on a plain checkpoint, knorm at ratio 0.5 halves each head's unprotected
// prompt entries, which the per-request compression ratio shows; without a
// policy the cache stays dense (ratio 1).
TEST(ClientKvPolicyTest, PolicyFlagsReachTheServer) {
  TempDir dir;
  ServerProcess server({"--model", TestDataDir() + "/models/qwen3-plain"});
  const std::string t = " --target " + server.target();
  const std::string common = "bench --dataset random --input-len 200 --output-len 4 --num-requests 3 --warmup 0 -q";
  CommandResult r = Dms(common + " --kv-policy knorm --compression-ratio 0.5 --protect-tokens 8 --json " +
                        dir.File("knorm.json") + t);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(ReadFile(dir.File("knorm.json")));
  ASSERT_EQ(j["completed"], 3) << j.dump();
  for (const auto& req : j["per_request"]) {
    // 200 prompt tokens + 4 generated: ~96 + 8 + 4 kept of 204 -> ~1.9x.
    EXPECT_GT(req["compression_ratio"].get<double>(), 1.7) << req.dump();
    EXPECT_LT(req["compression_ratio"].get<double>(), 2.1) << req.dump();
  }
  r = Dms(common + " --json " + dir.File("dense.json") + t);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(ReadFile(dir.File("dense.json")));
  for (const auto& req : j["per_request"]) EXPECT_DOUBLE_EQ(req["compression_ratio"].get<double>(), 1.0);
  // A policy the server does not know is its one-line refusal.
  r = Dms("generate --prompt-token-ids 1,2,3 --max-tokens 2 --kv-policy h2o" + t);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("h2o"), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// The needle eval's split layout puts the question in its own, last user
// message: the server protects only it and the generation prompt, so a
// training-free policy prunes the document. In the single layout the whole
// prompt is the last user message and nothing is pruned (the comparison
// table would then show every policy at 1.0x).
TEST(NeedlePolicyTest, SplitLayoutLetsATrainingFreePolicyPruneTheDocument) {
  TempDir dir;
  const CommandResult made = RunCommand(BinDir() + "/dms-engine make-model --preset tiny --variant none --out " +
                                        dir.File("plain") + " --tokenizer " + TokenizerDir());
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ServerProcess server({"--model", dir.File("plain")});
  const std::string common = "eval needle --lengths 256 --depths 50 --modes no-think --max-tokens-no-think 2 -q "
                             "--kv-policy knorm --compression-ratio 0.5 --target " + server.target();
  CommandResult r = Dms(common + " --json " + dir.File("split.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("split layout"), std::string::npos) << r.out;
  auto j = nlohmann::json::parse(ReadFile(dir.File("split.json")));
  EXPECT_EQ(j["config"]["layout"], "split");
  ASSERT_EQ(j["cases"].size(), 1u);
  // Ratio 0.5 keeps floor(256 / 2) = 128 entries, the ~35 protected among
  // them, and the reply adds its tokens: (256 + 2) / (128 + 2) ~ 1.98x.
  const double split_ratio = j["cases"][0]["compression_ratio"].get<double>();
  EXPECT_GT(split_ratio, 1.9) << j.dump();
  EXPECT_LT(split_ratio, 2.0) << j.dump();
  r = Dms(common + " --layout single --json " + dir.File("single.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  j = nlohmann::json::parse(ReadFile(dir.File("single.json")));
  EXPECT_EQ(j["config"]["layout"], "single");
  EXPECT_DOUBLE_EQ(j["cases"][0]["compression_ratio"].get<double>(), 1.0) << j.dump();
  r = Dms(common + " --layout both");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "dms: --layout: expected split or single, found 'both'\n");
}

TEST(ClientHealthTest, NotServingAfterTheServerStops) {
  ServerProcess server({"--model", TestDataDir() + "/models/dms-neuron-w0-gqa1"});
  const std::string target = " --target " + server.target();
  EXPECT_EQ(Dms("health" + target).exit_code, 0);
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(), 0) << "dms-server's log:\n" << server.Log();
  const CommandResult r = Dms("health" + target);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace
}  // namespace dms::testing
