// The engine thread end to end on the CPU backend: greedy generation
// reproduces the reference's greedy tokens; batching, preemption and
// cancellation do not change results; accounting returns to zero.
#include "engine/runtime/engine.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <mutex>
#include <nlohmann/json.hpp>

#include "engine/backends/backend_factory.h"
#include "tests/test_util.h"

namespace dms {
namespace {
namespace fs = std::filesystem;

// Collects a request's stream; Wait() blocks until OnFinish.
class CollectingSink : public RequestSink {
 public:
  void OnDelta(const TokenDelta& d) override {
    std::lock_guard<std::mutex> lock(mu_);
    ids.insert(ids.end(), d.token_ids.begin(), d.token_ids.end());
    text += d.text;
    ++deltas;
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
  std::string text;
  int deltas = 0;
  RequestFinish finish;
  bool done = false;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
};

struct GoldenRun {
  std::string dir;
  std::vector<int32_t> prompt, greedy;
  double eviction_rate = 0;
};

std::vector<GoldenRun> Goldens() {
  std::vector<GoldenRun> out;
  std::vector<std::string> roots = {testing::TestDataDir() + "/models"};
  if (!testing::SharedFixturesDir().empty()) roots.push_back(testing::SharedFixturesDir() + "/models");
  for (const auto& root : roots) {
    if (!fs::is_directory(root)) continue;
    for (const auto& e : fs::directory_iterator(root)) {
      if (!fs::exists(e.path() / "golden.json")) continue;
      auto j = nlohmann::json::parse(testing::ReadFile((e.path() / "golden.json").string()));
      auto tokens = j["tokens"].get<std::vector<int32_t>>();
      const int p = j["prompt_len"].get<int>();
      out.push_back({e.path().string(), {tokens.begin(), tokens.begin() + p},
                     {tokens.begin() + p, tokens.end()}, j.value("eviction_rate", 0.0)});
    }
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.dir < b.dir; });
  if (out.empty()) throw std::runtime_error("no golden models under " + testing::TestDataDir());
  return out;
}

std::unique_ptr<Engine> MakeEngine(const std::string& dir, int kv_blocks, SchedulerOptions sched = {}) {
  auto ckpt = Checkpoint::Load(dir);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  BackendOptions bo;
  bo.kv_block_size = 4;
  bo.kv_num_blocks = kv_blocks;
  auto backend = CreateBackend(std::shared_ptr<const Checkpoint>(std::move(*ckpt)), bo);
  EXPECT_TRUE(backend.ok()) << backend.status().ToString();
  EngineOptions eo;
  eo.scheduler = sched;
  return Engine::CreateWithBackend(std::move(*backend), nullptr, eo);
}

GenerationRequest Greedy(const std::vector<int32_t>& prompt, int max_tokens, std::string id = "") {
  GenerationRequest r;
  r.request_id = std::move(id);
  r.prompt_tokens = prompt;
  r.max_tokens = max_tokens;
  r.sampling.temperature = 0;
  return r;
}

TEST(Engine, GreedyGenerationReproducesTheReference) {
  for (const GoldenRun& g : Goldens()) {
    SCOPED_TRACE(g.dir);
    auto engine = MakeEngine(g.dir, 4096);
    auto sink = std::make_shared<CollectingSink>();
    ASSERT_TRUE(engine->Submit(Greedy(g.prompt, g.greedy.size()), sink).ok());
    sink->Wait();
    EXPECT_EQ(sink->ids, g.greedy);
    EXPECT_EQ(sink->finish.reason, FinishReason::kLength);
    EXPECT_EQ(sink->finish.prompt_tokens, static_cast<int>(g.prompt.size()));
    EXPECT_EQ(sink->finish.completion_tokens, static_cast<int>(g.greedy.size()));
    if (g.eviction_rate > 0) {
      EXPECT_GT(sink->finish.kv.compression_ratio, 1.0);
    } else {
      EXPECT_EQ(sink->finish.kv.compression_ratio, 1.0);
    }
    engine->Stop();
    EXPECT_EQ(engine->Stats().kv.blocks_used, 0);
  }
}

TEST(Engine, ConcurrentRequestsUnderPreemptionMatchSoloRuns) {
  const auto goldens = Goldens();
  ASSERT_FALSE(goldens.empty());
  const GoldenRun& g = goldens.front();
  // A pool too small for all streams at once forces preemption + recompute;
  // a small token budget forces chunked prefill.
  SchedulerOptions sched;
  sched.max_batch_tokens = 48;
  auto engine = MakeEngine(g.dir, 260, sched);
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  const int kStreams = 6;
  for (int i = 0; i < kStreams; ++i) {
    sinks.push_back(std::make_shared<CollectingSink>());
    // Different prompt lengths: prefixes of the golden prompt.
    std::vector<int32_t> prompt(g.prompt.begin(), g.prompt.end() - i * 7);
    ASSERT_TRUE(engine->Submit(Greedy(prompt, 40, "s" + std::to_string(i)), sinks.back()).ok());
  }
  for (auto& s : sinks) s->Wait();
  EXPECT_GT(engine->Stats().preemptions, 0) << "the pool was meant to force preemption";
  // The full-prompt stream must equal the reference's greedy continuation.
  EXPECT_EQ(sinks[0]->ids, std::vector<int32_t>(g.greedy.begin(), g.greedy.begin() + 40));
  for (int i = 1; i < kStreams; ++i) {
    std::vector<int32_t> prompt(g.prompt.begin(), g.prompt.end() - i * 7);
    auto solo = MakeEngine(g.dir, 4096);
    auto sink = std::make_shared<CollectingSink>();
    ASSERT_TRUE(solo->Submit(Greedy(prompt, 40), sink).ok());
    sink->Wait();
    EXPECT_EQ(sinks[i]->ids, sink->ids) << "stream " << i;
  }
  engine->Stop();
  EXPECT_EQ(engine->Stats().kv.blocks_used, 0);
}

// The CPU backend with its sampling hidden: the engine then samples every
// row on the host (the path a backend without sampling takes).
class HostSamplingBackend : public Backend {
 public:
  explicit HostSamplingBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}
  const ModelConfig& config() const override { return inner_->config(); }
  BackendInfo info() const override {
    BackendInfo i = inner_->info();
    i.sampling = false;
    return i;
  }
  StatusOr<SeqId> CreateSequence() override { return inner_->CreateSequence(); }
  void ReleaseSequence(SeqId seq) override { inner_->ReleaseSequence(seq); }
  int KvBlocksNeeded(SeqId seq, int n) const override { return inner_->KvBlocksNeeded(seq, n); }
  using Backend::Forward;
  Status Forward(std::span<const ForwardChunk> batch, ForwardResult* out) override {
    for (const ForwardChunk& c : batch) {
      if (c.sampling) return InternalError("the engine asked a backend without sampling to sample");
    }
    return inner_->Forward(batch, out);
  }
  SequenceKvStats SequenceStats(SeqId seq) const override { return inner_->SequenceStats(seq); }
  KvPoolStats PoolStats() const override { return inner_->PoolStats(); }

 private:
  std::unique_ptr<Backend> inner_;
};

// Sampling on the backend (penalties tracked there across preemption and
// recompute) gives the tokens the host sampler gives for the same seeds.
TEST(Engine, BackendSamplingEqualsHostSamplingUnderPreemption) {
  const GoldenRun g = Goldens().front();
  auto run = [&](bool backend_sampling) {
    auto ckpt = Checkpoint::Load(g.dir);
    EXPECT_TRUE(ckpt.ok());
    BackendOptions bo;
    bo.kv_block_size = 4;
    bo.kv_num_blocks = 260;
    auto backend = CreateBackend(std::shared_ptr<const Checkpoint>(std::move(*ckpt)), bo);
    EXPECT_TRUE(backend.ok());
    std::unique_ptr<Backend> b = std::move(*backend);
    if (!backend_sampling) b = std::make_unique<HostSamplingBackend>(std::move(b));
    EXPECT_EQ(b->info().sampling, backend_sampling);
    EngineOptions eo;
    eo.scheduler.max_batch_tokens = 48;
    std::unique_ptr<Engine> made = Engine::CreateWithBackend(std::move(b), nullptr, eo);
    Engine& engine = *made;
    std::vector<std::shared_ptr<CollectingSink>> sinks;
    for (int i = 0; i < 6; ++i) {
      GenerationRequest r =
          Greedy(std::vector<int32_t>(g.prompt.begin(), g.prompt.end() - i * 7), 40);
      r.ignore_eos = true;
      r.sampling.temperature = 0.4f + 0.3f * i;
      r.sampling.top_k = i % 3 == 0 ? 0 : 5 * i;
      r.sampling.top_p = i % 2 ? 0.9f : 1.0f;
      r.sampling.min_p = i == 4 ? 0.05f : 0.0f;
      r.sampling.repetition_penalty = i % 2 ? 1.3f : 1.0f;
      r.sampling.presence_penalty = i == 2 ? 0.5f : 0.0f;
      r.sampling.frequency_penalty = i == 3 ? 0.7f : 0.0f;
      r.sampling.logprobs = i == 5 ? 3 : 0;
      r.sampling.seed = 100 + i;
      sinks.push_back(std::make_shared<CollectingSink>());
      EXPECT_TRUE(engine.Submit(r, sinks.back()).ok());
    }
    for (auto& s : sinks) s->Wait();
    EXPECT_GT(engine.Stats().preemptions, 0) << "the pool was meant to force preemption";
    std::vector<std::vector<int32_t>> out;
    for (auto& s : sinks) out.push_back(s->ids);
    return out;
  };
  const auto on_backend = run(true);
  const auto on_host = run(false);
  ASSERT_EQ(on_backend.size(), on_host.size());
  for (size_t i = 0; i < on_host.size(); ++i) {
    EXPECT_EQ(on_backend[i], on_host[i]) << "stream " << i;
    EXPECT_EQ(on_host[i].size(), 40u);
  }
}

TEST(Engine, StopTokenIdsMaxTokensAndValidation) {
  const GoldenRun g = Goldens().front();
  auto engine = MakeEngine(g.dir, 4096);
  auto sink = std::make_shared<CollectingSink>();
  GenerationRequest r = Greedy(g.prompt, 50);
  r.stop_token_ids = {g.greedy[3]};
  ASSERT_TRUE(engine->Submit(r, sink).ok());
  sink->Wait();
  EXPECT_EQ(sink->finish.reason, FinishReason::kStop);
  EXPECT_EQ(sink->ids.back(), g.greedy[3]);
  EXPECT_LE(sink->ids.size(), 4u);

  auto bad = [&](GenerationRequest req, StatusCode code, const std::string& msg) {
    Status st = engine->Submit(std::move(req), std::make_shared<CollectingSink>()).status();
    EXPECT_EQ(st.code(), code);
    EXPECT_EQ(st.message(), msg);
  };
  bad(Greedy({}, 5), StatusCode::kInvalidArgument, "prompt is empty");
  bad(Greedy(g.prompt, 0), StatusCode::kInvalidArgument, "max_tokens must be >= 1, got 0");
  bad(Greedy({1, 99999}, 5), StatusCode::kInvalidArgument,
      "prompt token id 99999 is outside the vocabulary [0, " +
          std::to_string(engine->model().config.vocab_size) + ")");
  GenerationRequest hot = Greedy(g.prompt, 5);
  hot.sampling.temperature = -0.5f;
  bad(hot, StatusCode::kInvalidArgument, "temperature must be >= 0 and finite, got -0.5");
  GenerationRequest stop = Greedy(g.prompt, 5);
  stop.stop_strings = {"x"};
  bad(stop, StatusCode::kFailedPrecondition,
      "stop strings need a tokenizer, and this checkpoint has none (tokenizer.json)");
}

TEST(Engine, CancelFreesTheCacheAndReportsCancelled) {
  const GoldenRun g = Goldens().front();
  auto engine = MakeEngine(g.dir, 4096);
  auto sink = std::make_shared<CollectingSink>();
  GenerationRequest r = Greedy(g.prompt, 3000);
  r.request_id = "long";
  r.ignore_eos = true;
  StatusOr<RequestHandle> handle = engine->Submit(r, sink);
  ASSERT_TRUE(handle.ok());
  // Same id while in flight is refused.
  EXPECT_EQ(engine->Submit(r, std::make_shared<CollectingSink>()).status().code(),
            StatusCode::kAlreadyExists);
  while (engine->Stats().tokens_generated < 3) std::this_thread::yield();
  engine->Cancel(*handle);
  sink->Wait();
  EXPECT_EQ(sink->finish.reason, FinishReason::kCancelled);
  EXPECT_EQ(sink->finish.error.code(), StatusCode::kCancelled);
  EXPECT_LT(sink->finish.completion_tokens, 3000);
  // The engine thread publishes stats after the step; wait for it.
  for (int i = 0; i < 1000 && engine->Stats().kv.blocks_used != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(engine->Stats().kv.blocks_used, 0);
}

// Records the most sequences ever resident at once.
class PeakObserver : public EngineObserver {
 public:
  void OnStep(const EngineStats& st) override {
    peak_running = std::max(peak_running.load(), st.running);
  }
  std::atomic<int> peak_running{0};
};

int PeakConcurrency(const std::string& dir, bool dense, int kv_blocks) {
  auto ckpt = Checkpoint::Load(dir);
  BackendOptions bo;
  bo.kv_block_size = 4;
  bo.kv_num_blocks = kv_blocks;
  bo.force_dense = dense;
  auto backend = CreateBackend(std::shared_ptr<const Checkpoint>(std::move(*ckpt)), bo);
  PeakObserver obs;
  EngineOptions eo;
  eo.scheduler.max_batch_tokens = 64;
  std::unique_ptr<Engine> made = Engine::CreateWithBackend(std::move(*backend), nullptr, eo, &obs);
  Engine& engine = *made;
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  for (int i = 0; i < 12; ++i) {
    GenerationRequest r;
    r.request_id = "r" + std::to_string(i);
    for (int t = 0; t < 150; ++t) r.prompt_tokens.push_back((t * 31 + i) % 200);
    r.max_tokens = 30;
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    sinks.push_back(std::make_shared<CollectingSink>());
    EXPECT_TRUE(engine.Submit(r, sinks.back()).ok());
  }
  for (auto& s : sinks) {
    s->Wait();
    EXPECT_EQ(s->finish.reason, FinishReason::kLength) << s->finish.error.message();
  }
  engine.Stop();
  return obs.peak_running.load();
}

TEST(Engine, DmsAdmitsMoreStreamsThanADenseCacheInTheSamePool) {
  // About 37% eviction and window 0: the same pool holds more DMS streams.
  const std::string dir = testing::TestDataDir() + "/models/dms-neuron-w0-gqa1";
  // Dense: 180 tokens x 2 layers x 4 KV heads / 4-token blocks = 360 blocks a
  // stream, so about 4 streams fit; DMS streams hold fewer entries.
  const int blocks = 1500;
  const int dense = PeakConcurrency(dir, /*dense=*/true, blocks);
  const int dms = PeakConcurrency(dir, /*dense=*/false, blocks);
  std::printf("peak concurrent streams in %d blocks: dense %d, DMS %d\n", blocks, dense, dms);
  EXPECT_GT(dms, dense);
}

// Engine stats are published after the step that finished a request: poll.
EngineStats SettledStats(Engine& e, const std::function<bool(const EngineStats&)>& ok) {
  EngineStats st = e.Stats();
  for (int i = 0; i < 2000 && !ok(st); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    st = e.Stats();
  }
  return st;
}

// Session continuation: the next turn prefills only its new tokens and
// produces what re-sending the whole conversation produces.
TEST(Engine, SessionContinuationEqualsAFullResend) {
  const GoldenRun g = Goldens().front();
  auto engine = MakeEngine(g.dir, 4096);
  auto run = [](Engine& e, GenerationRequest r) {
    auto sink = std::make_shared<CollectingSink>();
    EXPECT_TRUE(e.Submit(std::move(r), sink).ok());
    sink->Wait();
    return sink;
  };
  GenerationRequest t1 = Greedy(g.prompt, 20, "turn1");
  t1.session_id = "conv-1";
  auto out1 = run(*engine, t1);
  EXPECT_EQ(out1->finish.cached_prompt_tokens, 0);
  EngineStats st = SettledStats(*engine, [](const EngineStats& s) { return s.sessions == 1; });
  EXPECT_EQ(st.sessions, 1);
  EXPECT_GT(st.kv.blocks_used, 0) << "the session keeps its cache";

  // Turn 2 = the whole conversation so far + a new user turn.
  std::vector<int32_t> prompt2 = g.prompt;
  prompt2.insert(prompt2.end(), out1->ids.begin(), out1->ids.end());
  for (int i = 0; i < 11; ++i) prompt2.push_back((i * 17 + 3) % 200);
  const int64_t prefilled_before = engine->Stats().prompt_tokens_processed;
  GenerationRequest t2 = Greedy(prompt2, 20, "turn2");
  t2.session_id = "conv-1";
  auto out2 = run(*engine, t2);
  const int64_t prefilled =
      SettledStats(*engine, [&](const EngineStats& s) { return s.session_hits == 1; }).prompt_tokens_processed -
      prefilled_before;
  EXPECT_EQ(out2->finish.cached_prompt_tokens, static_cast<int>(g.prompt.size() + out1->ids.size() - 1));
  EXPECT_EQ(prefilled, 12) << "only the new turn (and turn 1's last token) is prefilled";
  EXPECT_EQ(engine->Stats().session_hits, 1);

  auto fresh = MakeEngine(g.dir, 4096);
  auto resend = run(*fresh, Greedy(prompt2, 20, "resend"));
  EXPECT_EQ(out2->ids, resend->ids);

  // A prompt that does not extend the cached conversation starts over, correctly.
  GenerationRequest other = Greedy(g.prompt, 20, "other");
  other.session_id = "conv-1";
  auto out3 = run(*engine, other);
  EXPECT_EQ(out3->finish.cached_prompt_tokens, 0);
  EXPECT_EQ(out3->ids, out1->ids);
  engine->Stop();
  EXPECT_EQ(engine->Stats().kv.blocks_used, 0) << "stopping releases session caches";
}

// Request ids and sessions belong to their owner: another owner may reuse the
// same ids without seeing, cancelling or evicting anything of the first.
TEST(Engine, RequestIdsAndSessionsAreScopedToTheirOwner) {
  const GoldenRun g = Goldens().front();
  auto engine = MakeEngine(g.dir, 4096);
  auto victim = std::make_shared<CollectingSink>();
  GenerationRequest a = Greedy(g.prompt, 3000, "victim-1");
  a.owner = "token-a";
  a.ignore_eos = true;
  StatusOr<RequestHandle> ha = engine->Submit(a, victim);
  ASSERT_TRUE(ha.ok());
  // The same owner may not reuse an id in flight; another owner may.
  EXPECT_EQ(engine->Submit(a, std::make_shared<CollectingSink>()).status().code(),
            StatusCode::kAlreadyExists);
  GenerationRequest b = a;
  b.owner = "token-b";
  b.max_tokens = 2;
  auto other = std::make_shared<CollectingSink>();
  StatusOr<RequestHandle> hb = engine->Submit(b, other);
  ASSERT_TRUE(hb.ok());
  EXPECT_NE(*ha, *hb);
  engine->Cancel(*hb);  // cancels b (or nothing, if it already finished), never a
  other->Wait();
  while (engine->Stats().tokens_generated < 10) std::this_thread::yield();
  EXPECT_FALSE(victim->done) << "another owner's cancel of the same id ended the victim";
  engine->Cancel(*ha);
  victim->Wait();
  EXPECT_EQ(victim->finish.reason, FinishReason::kCancelled);

  auto run = [&](GenerationRequest r) {
    auto sink = std::make_shared<CollectingSink>();
    EXPECT_TRUE(engine->Submit(std::move(r), sink).ok());
    sink->Wait();
    return sink;
  };
  GenerationRequest t1 = Greedy(g.prompt, 8, "t1");
  t1.owner = "token-a";
  t1.session_id = "conv";
  auto out1 = run(t1);
  std::vector<int32_t> prompt2 = g.prompt;
  prompt2.insert(prompt2.end(), out1->ids.begin(), out1->ids.end());
  prompt2.push_back(7);
  // Owner b sends a's conversation under a's session id: no reuse, and a's
  // cache survives for a's own next turn.
  GenerationRequest guess = Greedy(prompt2, 4, "guess");
  guess.owner = "token-b";
  guess.session_id = "conv";
  EXPECT_EQ(run(guess)->finish.cached_prompt_tokens, 0);
  GenerationRequest t2 = Greedy(prompt2, 4, "t2");
  t2.owner = "token-a";
  t2.session_id = "conv";
  EXPECT_EQ(run(t2)->finish.cached_prompt_tokens,
            static_cast<int>(g.prompt.size() + out1->ids.size() - 1));
}

TEST(Engine, SessionCachesAreReclaimedBeforeRunningWorkIsPreempted) {
  const GoldenRun g = Goldens().front();
  SchedulerOptions sched;
  sched.max_batch_tokens = 64;
  auto engine = MakeEngine(g.dir, 220, sched);
  // Fill the pool's session budget with idle conversations.
  for (int i = 0; i < 6; ++i) {
    GenerationRequest r = Greedy(std::vector<int32_t>(g.prompt.begin(), g.prompt.begin() + 60 + i), 5,
                                 "fill" + std::to_string(i));
    r.session_id = "idle-" + std::to_string(i);
    auto sink = std::make_shared<CollectingSink>();
    ASSERT_TRUE(engine->Submit(r, sink).ok());
    sink->Wait();
  }
  const EngineStats before = SettledStats(*engine, [](const EngineStats& s) { return s.running == 0; });
  EXPECT_GT(before.sessions, 0);
  // A long request needs the blocks: sessions go, nothing running is preempted.
  std::vector<int32_t> big = g.prompt;
  big.insert(big.end(), g.greedy.begin(), g.greedy.end());
  auto sink = std::make_shared<CollectingSink>();
  ASSERT_TRUE(engine->Submit(Greedy(big, 100, "big"), sink).ok());
  sink->Wait();
  EXPECT_EQ(sink->finish.reason, FinishReason::kLength) << sink->finish.error.message();
  const EngineStats after = SettledStats(*engine, [](const EngineStats& s) { return s.running == 0; });
  EXPECT_GT(after.session_evictions, before.session_evictions);
  EXPECT_EQ(after.preemptions, 0);
}

TEST(Engine, RequestLargerThanThePoolFailsWithAClearError) {
  const GoldenRun g = Goldens().front();
  auto engine = MakeEngine(g.dir, 2);  // far too small for even one token
  auto sink = std::make_shared<CollectingSink>();
  ASSERT_TRUE(engine->Submit(Greedy(g.prompt, 5), sink).ok());
  sink->Wait();
  EXPECT_EQ(sink->finish.reason, FinishReason::kError);
  EXPECT_EQ(sink->finish.error.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(sink->finish.error.message().find("does not fit in the KV cache even alone"),
            std::string::npos)
      << sink->finish.error.message();
}

}  // namespace
}  // namespace dms
