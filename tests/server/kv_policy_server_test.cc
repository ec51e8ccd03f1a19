// dms-server with KV policies, end to end over gRPC: --kv-policy and
// --compression-ratio as request defaults, per-request kv_policy /
// compression_ratio / protect_tokens giving the reference's greedy tokens from
// the pruned cache (tests/data/kv_policies/), retained counts in KvStats, and
// the refusals (bad names and ratios, a DMS-evicting server) as one clear line.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tests/server/server_harness.h"

namespace dms {
namespace {
using testing::ServerProcess;

struct StreamResult {
  grpc::Status status;
  std::vector<int32_t> ids;
  v1::GenerateResponse last;
};

StreamResult Generate(v1::Inference::Stub& stub, const v1::GenerateRequest& req) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  StreamResult r;
  auto reader = stub.Generate(&ctx, req);
  v1::GenerateResponse resp;
  while (reader->Read(&resp)) {
    r.ids.insert(r.ids.end(), resp.token_ids().begin(), resp.token_ids().end());
    r.last = resp;
  }
  r.status = reader->Finish();
  return r;
}

std::string ModelDir(const std::string& name) { return testing::TestDataDir() + "/models/" + name; }

// The reference setting of `model` with this policy, ratio and tail.
nlohmann::json Setting(const std::string& model, const std::string& policy, double ratio, int protect,
                       std::vector<int32_t>* prompt) {
  const auto doc =
      nlohmann::json::parse(testing::ReadFile(testing::TestDataDir() + "/kv_policies/checkpoint_cases.json"));
  for (const auto& m : doc["models"]) {
    if (m["model"] != model) continue;
    *prompt = m["prompt_tokens"].get<std::vector<int32_t>>();
    for (const auto& s : m["settings"]) {
      if (s["policy"] == policy && s["compression_ratio"] == ratio && s["protect_tokens"] == protect) return s;
    }
  }
  ADD_FAILURE() << "no reference setting " << model << " " << policy << " " << ratio << " " << protect;
  return {};
}

v1::GenerateRequest Request(const std::vector<int32_t>& prompt, uint32_t max_tokens) {
  v1::GenerateRequest req;
  for (int32_t t : prompt) req.add_prompt_token_ids(t);
  req.set_max_tokens(max_tokens);
  req.set_ignore_eos(true);
  req.mutable_sampling()->set_temperature(0);
  return req;
}

int64_t Kept(const nlohmann::json& setting) {
  int64_t n = 0;
  for (const auto& layer : setting["kept_positions"])
    for (const auto& head : layer) n += head.size();
  return n;
}

TEST(KvPolicyServer, PerRequestPoliciesOnADmsCheckpointServedDense) {
  // dms-proj-w16-gqa4: 2 layers, 2 KV heads; its greedy tokens differ per policy.
  const std::string model = "dms-proj-w16-gqa4";
  ServerProcess server({"--model", ModelDir(model), "--kv-policy", "dense", "--max-batch-tokens", "48"});
  auto stub = server.Stub();
  for (const auto& [policy, ratio, protect] :
       {std::tuple<std::string, double, int>{"snapkv", 0.75, 24}, {"expected-attention", 0.5, 0},
        {"streaming", 0.3, 100}, {"knorm", 0.75, 24}}) {
    SCOPED_TRACE(policy);
    std::vector<int32_t> prompt;
    const nlohmann::json s = Setting(model, policy, ratio, protect, &prompt);
    const auto greedy = s["greedy_tokens"].get<std::vector<int32_t>>();
    v1::GenerateRequest req = Request(prompt, greedy.size());
    req.set_kv_policy(policy);
    req.set_compression_ratio(ratio);
    req.set_protect_tokens(protect);
    StreamResult r = Generate(*stub, req);
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.ids, greedy);
    EXPECT_EQ(r.last.kv().retained_tokens(), static_cast<uint64_t>(Kept(s) + (greedy.size() - 1) * 4));
    EXPECT_GT(r.last.kv().compression_ratio(), 1.0);
  }
  // The server default (dense) keeps every token.
  std::vector<int32_t> prompt;
  Setting(model, "knorm", 0.5, 0, &prompt);
  StreamResult r = Generate(*stub, Request(prompt, 3));
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.last.kv().retained_tokens(), (prompt.size() + 2) * 4);
  // A ratio without a pruning policy is refused.
  v1::GenerateRequest bad = Request(prompt, 3);
  bad.set_compression_ratio(0.5);
  r = Generate(*stub, bad);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(r.status.error_message(),
            "compression_ratio applies to the training-free policies (knorm, snapkv, streaming, "
            "expected-attention), not to kv_policy 'dense'");
  bad.set_kv_policy("h2o");
  r = Generate(*stub, bad);
  EXPECT_EQ(r.status.error_message(),
            "kv_policy: expected one of auto, dense, knorm, snapkv, streaming, expected-attention; got 'h2o'");
  bad.set_kv_policy("knorm");
  bad.set_compression_ratio(1.0);
  r = Generate(*stub, bad);
  EXPECT_EQ(r.status.error_message(), "compression_ratio must be in [0, 1), got 1");
}

TEST(KvPolicyServer, FlagDefaultsApplyToRequestsThatLeaveThemUnset) {
  const std::string model = "qwen3-plain";
  ServerProcess server({"--model", ModelDir(model), "--kv-policy", "knorm", "--compression-ratio", "0.75"});
  auto stub = server.Stub();
  std::vector<int32_t> prompt;
  const nlohmann::json s = Setting(model, "knorm", 0.75, 24, &prompt);
  const auto greedy = s["greedy_tokens"].get<std::vector<int32_t>>();
  v1::GenerateRequest req = Request(prompt, greedy.size());
  req.set_protect_tokens(24);
  StreamResult r = Generate(*stub, req);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.ids, greedy);
  EXPECT_EQ(r.last.kv().retained_tokens(), static_cast<uint64_t>(Kept(s) + (greedy.size() - 1) * 4));
  // auto on a plain checkpoint: a dense cache.
  req.set_kv_policy("auto");
  req.set_max_tokens(2);
  r = Generate(*stub, req);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.last.kv().retained_tokens(), (prompt.size() + 1) * 4);
}

TEST(KvPolicyServer, TrainingFreePoliciesAreRefusedWhereDmsEvicts) {
  ServerProcess server({"--model", ModelDir("dms-proj-w16-gqa4")});
  auto stub = server.Stub();
  std::vector<int32_t> prompt;
  Setting("dms-proj-w16-gqa4", "knorm", 0.5, 0, &prompt);
  v1::GenerateRequest req = Request(prompt, 3);
  req.set_kv_policy("expected-attention");
  StreamResult r = Generate(*stub, req);
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(r.status.error_message(),
            "kv_policy 'expected-attention' needs a dense cache, but this server evicts by the checkpoint's DMS "
            "decisions (start it with --kv-policy dense to compare training-free policies on this checkpoint)");
  req.set_kv_policy("");
  r = Generate(*stub, req);
  EXPECT_TRUE(r.status.ok()) << "auto is DMS: " << r.status.error_message();
}

TEST(KvPolicyServer, BadFlagsAreOneClearLine) {
  auto run = [](const std::string& flags) {
    return testing::RunCommand(testing::BinDir() + "/dms-server --model " + ModelDir("qwen3-plain") +
                               " --listen 127.0.0.1:0 --metrics-listen off " + flags);
  };
  auto r = run("--kv-policy h2o");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "dms-server: --kv-policy: expected one of auto, dense, knorm, snapkv, streaming, expected-attention; "
            "got 'h2o'\n");
  r = run("--kv-policy snapkv --compression-ratio 1.5");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "dms-server: --compression-ratio must be in [0, 1), got 1.5\n");
  // CUDA tuning is checked before any backend exists (this one is the CPU).
  r = run("--cuda-tuning fold_norms=maybe");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "dms-server: --cuda-tuning: CUDA tuning: fold_norms takes on or off, not 'maybe'\n");
}

}  // namespace
}  // namespace dms
