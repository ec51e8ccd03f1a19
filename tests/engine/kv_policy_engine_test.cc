// Requests with a KV policy through the engine thread on the CPU backend:
// greedy tokens equal the reference's decode from the pruned cache (chunked
// prefill, batching with other requests and preemption by recompute
// included), retained counts, and the refusals (DMS caches, sessions, bad
// ratios) with their exact messages.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>

#include "engine/backends/backend_factory.h"
#include "engine/runtime/engine.h"
#include "tests/engine/kv_policy_golden.h"

namespace dms {
namespace {

using testing::KvPolicyDataDir;

class CollectingSink : public RequestSink {
 public:
  void OnDelta(const TokenDelta& d) override {
    std::lock_guard<std::mutex> lock(mu_);
    ids.insert(ids.end(), d.token_ids.begin(), d.token_ids.end());
  }
  void OnFinish(const RequestFinish& f) override {
    std::lock_guard<std::mutex> lock(mu_);
    finish = f;
    done = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return done; });
  }
  std::vector<int32_t> ids;
  RequestFinish finish;
  bool done = false;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
};

std::string ModelDir(const std::string& name) { return testing::TestDataDir() + "/models/" + name; }

std::unique_ptr<Engine> MakeEngine(const std::string& name, bool force_dense, int kv_blocks,
                                   int max_batch_tokens = 2048) {
  auto ckpt = Checkpoint::Load(ModelDir(name));
  EXPECT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  BackendOptions bo;
  bo.kv_block_size = 4;
  bo.kv_num_blocks = kv_blocks;
  bo.force_dense = force_dense;
  auto backend = CreateBackend(std::shared_ptr<const Checkpoint>(std::move(*ckpt)), bo);
  EXPECT_TRUE(backend.ok()) << backend.status().ToString();
  EngineOptions eo;
  eo.scheduler.max_batch_tokens = max_batch_tokens;
  return Engine::CreateWithBackend(std::move(*backend), nullptr, eo);
}

struct Setting {
  GenerationRequest request;
  std::vector<int32_t> greedy;
  int64_t kept = 0;  // entries the pruned prompt cache holds (all layers and heads)
};

struct ModelCase {
  std::string name;
  bool dms = false;
  int layers = 0, kv_heads = 0;
  std::vector<Setting> settings;
};

std::vector<ModelCase> Cases() {
  const auto doc = nlohmann::json::parse(testing::ReadFile(KvPolicyDataDir() + "/checkpoint_cases.json"));
  std::vector<ModelCase> out;
  for (const auto& m : doc["models"]) {
    ModelCase mc;
    mc.name = m["model"];
    auto cfg = LoadModelConfig(ModelDir(mc.name));
    EXPECT_TRUE(cfg.ok());
    mc.dms = cfg->dms.enabled;
    mc.layers = cfg->num_layers;
    mc.kv_heads = cfg->num_kv_heads;
    for (const auto& s : m["settings"]) {
      Setting st;
      st.request.prompt_tokens = m["prompt_tokens"].get<std::vector<int32_t>>();
      st.request.sampling.temperature = 0;
      st.request.ignore_eos = true;
      st.request.kv_policy = testing::KindFrom(s["policy"]);
      st.request.compression_ratio = s["compression_ratio"];
      st.request.protect_tokens = s["protect_tokens"];
      st.greedy = s["greedy_tokens"].get<std::vector<int32_t>>();
      st.request.max_tokens = static_cast<uint32_t>(st.greedy.size());
      for (const auto& layer : s["kept_positions"])
        for (const auto& head : layer) st.kept += head.size();
      mc.settings.push_back(std::move(st));
    }
    out.push_back(std::move(mc));
  }
  return out;
}

std::shared_ptr<CollectingSink> RunRequest(Engine& e, GenerationRequest r) {
  auto sink = std::make_shared<CollectingSink>();
  Status st = e.Submit(std::move(r), sink).status();
  EXPECT_TRUE(st.ok()) << st.ToString();
  if (st.ok()) sink->Wait();
  return sink;
}

TEST(KvPolicyEngine, GreedyTokensEqualTheReferenceDecodeFromThePrunedCache) {
  for (const ModelCase& mc : Cases()) {
    SCOPED_TRACE(mc.name);
    // Whole-prompt prefill, and 48-token chunks (the policy waits for the
    // prompt's last chunk).
    for (int budget : {2048, 48}) {
      SCOPED_TRACE("max_batch_tokens " + std::to_string(budget));
      auto engine = MakeEngine(mc.name, mc.dms, 8000, budget);
      for (const Setting& s : mc.settings) {
        SCOPED_TRACE(std::string(KvPolicyName(s.request.kv_policy)) + " ratio " +
                     std::to_string(s.request.compression_ratio) + " protect " +
                     std::to_string(s.request.protect_tokens));
        auto out = RunRequest(*engine, s.request);
        EXPECT_EQ(out->ids, s.greedy);
        EXPECT_EQ(out->finish.reason, FinishReason::kLength) << out->finish.error.ToString();
        // The pruned prompt plus the generated tokens forwarded after it.
        const int64_t fed = static_cast<int64_t>(s.greedy.size()) - 1;
        EXPECT_EQ(out->finish.kv.retained_tokens, s.kept + fed * mc.layers * mc.kv_heads);
        EXPECT_GT(out->finish.kv.compression_ratio, 1.0);
      }
      engine->Stop();
      EXPECT_EQ(engine->Stats().kv.blocks_used, 0);
    }
  }
}

TEST(KvPolicyEngine, ConcurrentPoliciesUnderPreemptionMatchTheReference) {
  // The untied model: its greedy tokens differ between policies.
  const std::vector<ModelCase> cases = Cases();
  const ModelCase& mc = cases.back();
  ASSERT_EQ(mc.name, "dms-proj-w16-gqa4");
  // A dense 160-token prompt takes 2 layers x 2 heads x 40 blocks of 4
  // tokens; pruned, far fewer. In pools this small, streams admitted on a
  // tight fit get preempted when the others' decodes need blocks; a preempted
  // stream is recomputed, its policy running again at the same prompt
  // boundary, and must still give the reference's tokens (whose greedy
  // margins hold for fp32 arithmetic in any batching). Whether a given pool
  // preempts depends on how the submissions interleave with engine steps, so
  // several pools are tried; at least one must preempt.
  int preempted = 0;
  for (const auto& [pool, budget, tokens] : {std::tuple<int, int, int>{250, 2048, 12}, {330, 2048, 12},
                                             {370, 2048, 12}, {330, 64, 60}, {300, 64, 60}}) {
    SCOPED_TRACE("pool " + std::to_string(pool) + " budget " + std::to_string(budget));
    auto engine = MakeEngine(mc.name, /*force_dense=*/true, pool, budget);
    std::vector<std::shared_ptr<CollectingSink>> sinks;
    for (size_t i = 0; i < mc.settings.size(); ++i) {
      GenerationRequest r = mc.settings[i].request;
      r.request_id = "s" + std::to_string(i);
      r.max_tokens = tokens;
      sinks.push_back(std::make_shared<CollectingSink>());
      ASSERT_TRUE(engine->Submit(r, sinks.back()).ok());
    }
    int here = 0;
    for (size_t i = 0; i < sinks.size(); ++i) {
      sinks[i]->Wait();
      const auto& want = mc.settings[i].greedy;
      ASSERT_EQ(sinks[i]->ids.size(), static_cast<size_t>(tokens)) << sinks[i]->finish.error.ToString();
      EXPECT_EQ(std::vector<int32_t>(sinks[i]->ids.begin(), sinks[i]->ids.begin() + want.size()), want)
          << "stream " << i;
      here += sinks[i]->finish.preemptions;
    }
    std::printf("pool %d blocks, %d tokens a step: %d preemptions\n", pool, budget, here);
    preempted += here;
    engine->Stop();
    EXPECT_EQ(engine->Stats().kv.blocks_used, 0);
  }
  EXPECT_GT(preempted, 0) << "the pools were meant to force preemption";
}

TEST(KvPolicyEngine, RatioZeroKeepsEverythingAndDenseOrAutoPruneNothing) {
  const ModelCase mc = Cases().front();
  ASSERT_EQ(mc.name, "qwen3-plain");
  auto engine = MakeEngine(mc.name, false, 8000);
  const int P = static_cast<int>(mc.settings[0].request.prompt_tokens.size());
  const int64_t per_token = static_cast<int64_t>(mc.layers) * mc.kv_heads;
  for (KvPolicyKind kind : {KvPolicyKind::kAuto, KvPolicyKind::kDense, KvPolicyKind::kKnorm,
                            KvPolicyKind::kSnapKv, KvPolicyKind::kStreaming, KvPolicyKind::kExpectedAttention}) {
    SCOPED_TRACE(KvPolicyName(kind));
    GenerationRequest r = mc.settings[0].request;
    r.kv_policy = kind;
    r.compression_ratio = 0.0;
    r.max_tokens = 3;
    auto out = RunRequest(*engine, r);
    EXPECT_EQ(out->finish.kv.retained_tokens, (P + 2) * per_token);
    EXPECT_DOUBLE_EQ(out->finish.kv.compression_ratio, 1.0);
  }
}

TEST(KvPolicyEngine, RefusalsNameTheProblem) {
  const ModelCase plain = Cases().front();
  GenerationRequest base = plain.settings[0].request;
  auto expect = [](Engine& e, const GenerationRequest& r, StatusCode code, const std::string& msg) {
    Status st = e.Submit(r, std::make_shared<CollectingSink>()).status();
    EXPECT_EQ(st.code(), code) << st.ToString();
    EXPECT_EQ(st.message(), msg);
  };
  {
    // A DMS checkpoint served with DMS eviction: training-free policies and
    // "dense" are refused; auto is DMS.
    auto dms = MakeEngine("dms-proj-w16-gqa4", /*force_dense=*/false, 8000);
    GenerationRequest r = base;
    for (int32_t& t : r.prompt_tokens) t %= 256;
    r.kv_policy = KvPolicyKind::kSnapKv;
    expect(*dms, r, StatusCode::kInvalidArgument,
           "kv_policy 'snapkv' needs a dense cache, but this server evicts by the checkpoint's DMS decisions "
           "(start it with --kv-policy dense to compare training-free policies on this checkpoint)");
    r.kv_policy = KvPolicyKind::kDense;
    expect(*dms, r, StatusCode::kInvalidArgument,
           "kv_policy 'dense': this server evicts by the checkpoint's DMS decisions; a dense cache is chosen "
           "when the server starts (--kv-policy dense)");
    r.kv_policy = KvPolicyKind::kAuto;
    r.max_tokens = 2;
    auto out = RunRequest(*dms, r);
    EXPECT_EQ(out->finish.reason, FinishReason::kLength);
  }
  auto engine = MakeEngine(plain.name, false, 8000);
  GenerationRequest r = base;
  r.kv_policy = KvPolicyKind::kKnorm;
  r.session_id = "conv";
  expect(*engine, r, StatusCode::kInvalidArgument,
         "session_id cannot be combined with kv_policy 'knorm': a pruned cache depends on where the turns "
         "were cut; send the whole conversation without session_id");
  r.session_id.clear();
  r.compression_ratio = 1.0;
  expect(*engine, r, StatusCode::kInvalidArgument, "compression_ratio must be in [0, 1), got 1");
  r.compression_ratio = -0.25;
  expect(*engine, r, StatusCode::kInvalidArgument, "compression_ratio must be in [0, 1), got -0.25");
  r.compression_ratio = 0.5;
  r.protect_tokens = -1;
  expect(*engine, r, StatusCode::kInvalidArgument, "protect_tokens must be >= 0, got -1");
}

}  // namespace
}  // namespace dms
