// The CUDA backend end to end against the golden logits of every model in
// tests/data/models (and ../shared/fixtures/models when present), for the
// chunkings of the CPU acceptance (tests/engine/golden_logits_test.cc):
//  * precision f32 (f32 KV, hi+lo GEMM inputs): max |diff| <= 2e-3 at every
//    position and the retained counts exact, as the CPU backend;
//  * precision bf16 (the serving default): decision agreement with the f32
//    run reported; logits within bf16 tolerance at every position no flipped
//    decision can reach (all positions when none flips);
//  * the dlopen path (CreateBackend "cuda"/"auto"), dms-engine score
//    --backend cuda, batching invariance and the error contract.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>

#include "engine/backends/backend_factory.h"
#include "engine/core/sampler.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/model/checkpoint.h"
#include "engine/model/demo_model.h"
#include "kernels/attention.h"
#include "tests/forward_result_check.h"
#include "tests/golden_models.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/test_util.h"

namespace dms {
namespace {
namespace fs = std::filesystem;

constexpr float kF32Tolerance = 2e-3f;    // as the CPU acceptance
constexpr double kBf16RelTolerance = 0.08;  // x rms(golden logits)

using Golden = testing::GoldenModel;
using testing::GoldenChunkings;
using testing::GoldenModelDirs;
using testing::LoadGoldenModel;

struct ScoreResult {
  std::vector<float> logits;           // [T, vocab]
  std::vector<uint8_t> decisions;      // [layers, T, Hkv]
  SequenceKvStats stats;
};

ScoreResult Score(CudaBackend& b, const std::vector<int32_t>& tokens, const std::vector<int>& chunks) {
  ScoreResult r;
  const ModelConfig& cfg = b.config();
  const int T = static_cast<int>(tokens.size()), L = cfg.num_layers, H = cfg.num_kv_heads;
  std::vector<uint8_t> trace;
  EXPECT_TRUE(b.set_decision_trace(&trace).ok());
  r.decisions.assign(static_cast<size_t>(L) * T * H, 0);
  auto seq = b.CreateSequence();
  EXPECT_TRUE(seq.ok());
  std::vector<float> step;
  size_t pos = 0;
  for (int n : chunks) {
    trace.clear();
    ForwardChunk c{*seq, std::span<const int32_t>(tokens.data() + pos, n), n};
    Status st = b.Forward(std::span<const ForwardChunk>(&c, 1), &step);
    EXPECT_TRUE(st.ok()) << st.ToString();
    r.logits.insert(r.logits.end(), step.begin(), step.end());
    for (int l = 0; l < L && trace.size() == static_cast<size_t>(L) * n * H; ++l) {
      std::memcpy(&r.decisions[(static_cast<size_t>(l) * T + pos) * H],
                  &trace[static_cast<size_t>(l) * n * H], static_cast<size_t>(n) * H);
    }
    pos += n;
  }
  EXPECT_TRUE(b.set_decision_trace(nullptr).ok());
  r.stats = b.SequenceStats(*seq);
  b.ReleaseSequence(*seq);
  return r;
}

float MaxDiff(const std::vector<float>& got, const std::vector<float>& want, size_t begin,
              size_t end, size_t* worst_at) {
  float worst = 0;
  for (size_t i = begin; i < end && i < got.size(); ++i) {
    const float d = std::abs(got[i] - want[i]);
    if (!(d <= worst)) {
      worst = std::isnan(d) ? INFINITY : d;
      if (worst_at) *worst_at = i;
    }
  }
  return worst;
}

std::unique_ptr<CudaBackend> MakeBackend(const std::string& dir, const std::string& precision,
                                         int max_batch_tokens = 1024,
                                         bool device_sampling = false,
                                         const CudaTuning& tuning = CudaTuning{}) {
  auto ckpt = Checkpoint::Load(dir);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  if (!ckpt.ok()) return nullptr;
  CudaBackendOptions o;
  o.tuning = tuning;
  o.precision = precision;
  o.kv_block_size = 16;
  o.max_batch_tokens = max_batch_tokens;
  o.max_sequences = 8;
  o.kv_cache_bytes = 64 << 20;
  o.device_sampling = device_sampling;
  auto b = CudaBackend::Create(std::shared_ptr<const Checkpoint>(std::move(*ckpt)), o);
  EXPECT_TRUE(b.ok()) << b.status().ToString();
  return b.ok() ? std::move(*b) : nullptr;
}

TEST(CudaGolden, F32PrecisionMatchesEveryModelEveryChunking) {
  DMS_SKIP_WITHOUT_GPU();
  const auto dirs = GoldenModelDirs();
  ASSERT_GE(dirs.size(), 1u);
  for (const std::string& dir : dirs) {
    SCOPED_TRACE(dir);
    const Golden g = LoadGoldenModel(dir);
    auto b = MakeBackend(dir, "f32");
    ASSERT_TRUE(b);
    const int vocab = b->config().vocab_size;
    ASSERT_EQ(g.logits.size(), g.tokens.size() * vocab);
    std::vector<uint8_t> first_decisions;
    for (const auto& [name, chunks] : GoldenChunkings(g)) {
      SCOPED_TRACE(name);
      const ScoreResult r = Score(*b, g.tokens, chunks);
      size_t at = 0;
      const float worst = MaxDiff(r.logits, g.logits, 0, g.logits.size(), &at);
      if (first_decisions.empty()) first_decisions = r.decisions;
      const bool same_decisions = r.decisions == first_decisions;
      std::printf("  f32  %-32s %-24s max|diff| %.3g retained %s decisions %s\n", g.name.c_str(),
                  name.c_str(), worst, r.stats.retained == g.retained ? "exact" : "DIFFER",
                  same_decisions ? "= one prefill" : "DIFFER from one prefill");
      EXPECT_EQ(r.logits.size(), g.logits.size());
      EXPECT_LE(worst, kF32Tolerance) << "worst at position " << at / vocab << " token " << at % vocab;
      EXPECT_EQ(r.stats.retained, g.retained);
      EXPECT_EQ(r.stats.logical_tokens, static_cast<int>(g.tokens.size()));
      EXPECT_TRUE(same_decisions);
    }
    EXPECT_EQ(b->PoolStats().blocks_used, 0);
  }
}

// A step as long as the workspace runs its gate;up GEMM in row slices (the
// workspace holds [M, qkv] floats, not [M, 2 I]) whose SwiGLU outputs land
// over the GEMM input: one prefill of the whole golden sequence with
// max_batch_tokens = its length, on the models where 2 I > qkv width.
TEST(CudaGolden, GateUpRowSlicesMatchTheGoldens) {
  DMS_SKIP_WITHOUT_GPU();
  int sliced = 0;
  for (const std::string& dir : GoldenModelDirs()) {
    const Golden g = LoadGoldenModel(dir);
    const int T = static_cast<int>(g.tokens.size());
    auto b = MakeBackend(dir, "f32", T);
    ASSERT_TRUE(b);
    const ModelConfig& c = b->config();
    const int64_t qkv = static_cast<int64_t>(c.num_q_heads + 2 * c.num_kv_heads) * c.head_dim;
    const int64_t slice = static_cast<int64_t>(T) * qkv / (2 * c.intermediate_size);
    if (slice >= T) continue;  // one slice: the path of the other tests
    ++sliced;
    SCOPED_TRACE(g.name + ": slices of " + std::to_string(slice) + " rows");
    const ScoreResult r = Score(*b, g.tokens, {T});
    size_t at = 0;
    const float worst = MaxDiff(r.logits, g.logits, 0, g.logits.size(), &at);
    EXPECT_LE(worst, kF32Tolerance) << "worst at position " << at / c.vocab_size;
    EXPECT_EQ(r.stats.retained, g.retained);
    gpu_testing::Report("gate_up_slices", g.name + " T=" + std::to_string(T) + " slice " + std::to_string(slice),
                        "max|diff| vs golden " + std::to_string(worst), worst <= kF32Tolerance);
  }
  EXPECT_GE(sliced, 3) << "too few models take the sliced path";
}

TEST(CudaGolden, Bf16PrecisionWithinBf16ToleranceWhereDecisionsAgree) {
  DMS_SKIP_WITHOUT_GPU();
  int64_t agree_all = 0, total_all = 0;
  for (const std::string& dir : GoldenModelDirs()) {
    SCOPED_TRACE(dir);
    const Golden g = LoadGoldenModel(dir);
    auto ref = MakeBackend(dir, "f32");
    auto b = MakeBackend(dir, "bf16");
    ASSERT_TRUE(ref && b);
    const ModelConfig& cfg = b->config();
    const int T = static_cast<int>(g.tokens.size()), H = cfg.num_kv_heads, V = cfg.vocab_size;
    const int window = cfg.dms.enabled ? cfg.dms.window_size : 0;
    const ScoreResult want = Score(*ref, g.tokens, {T});
    for (const auto& [name, chunks] : GoldenChunkings(g)) {
      SCOPED_TRACE(name);
      const ScoreResult r = Score(*b, g.tokens, chunks);
      // The first token whose decision differs from the f32 run: a flip of
      // d[t] changes attention only for queries at positions >= t + W.
      int64_t agree = 0;
      int first_flip = T;
      for (size_t i = 0; i < r.decisions.size(); ++i) {
        if (r.decisions[i] == want.decisions[i]) {
          ++agree;
        } else {
          first_flip = std::min(first_flip, static_cast<int>((i / H) % T));
        }
      }
      agree_all += agree;
      total_all += static_cast<int64_t>(r.decisions.size());
      const int clean = std::min(T, first_flip + window);
      const float worst_all = MaxDiff(r.logits, g.logits, 0, g.logits.size(), nullptr);
      size_t at = 0;
      const float worst_clean = MaxDiff(r.logits, g.logits, 0, static_cast<size_t>(clean) * V, &at);
      const double tol = kBf16RelTolerance * g.rms;
      std::printf("  bf16 %-32s %-24s decisions %lld/%zu agree, clean positions %d/%d: max|diff| "
                  "%.3g (tol %.3g), all: %.3g, retained %s\n",
                  g.name.c_str(), name.c_str(), static_cast<long long>(agree), r.decisions.size(),
                  clean, T, worst_clean, tol, worst_all,
                  r.stats.retained == g.retained ? "exact" : "differ");
      EXPECT_LE(worst_clean, tol) << "worst at position " << at / V << " token " << at % V;
      if (first_flip == T) {
        EXPECT_EQ(r.stats.retained, g.retained);
      }
    }
  }
  std::printf("  bf16 decision agreement with the f32 run: %lld / %lld (%.4f%%)\n",
              static_cast<long long>(agree_all), static_cast<long long>(total_all),
              100.0 * agree_all / std::max<int64_t>(1, total_all));
}

// Decode steps replay captured CUDA graphs (one per step shape): the same
// logits, bit for bit, as launching the kernels one by one, and within the
// golden tolerance; graphs are made only for decode-only steps. Two decoding
// sequences make the batch shape change (1, then 2 tokens a step).
TEST(CudaGolden, DecodeGraphsMatchEagerSteps) {
  DMS_SKIP_WITHOUT_GPU();
  for (const char* model : {"dms-neuron-bias-hd64", "dms-neuron-w16-long", "dms-proj-w16-gqa4"}) {
    const std::string dir = testing::TestDataDir() + "/models/" + model;
    const Golden g = LoadGoldenModel(dir);
    for (const std::string precision : {"f32", "bf16"}) {
      SCOPED_TRACE(std::string(model) + " " + precision);
      std::vector<float> runs[2];
      size_t graphs[2] = {0, 0};
      const int T = static_cast<int>(g.tokens.size()), V = g.logits.size() / T;
      for (int use : {0, 1}) {
        auto b = MakeBackend(dir, precision);
        ASSERT_TRUE(b);
        b->set_use_graphs(use == 1);
        const SeqId s1 = *b->CreateSequence(), s2 = *b->CreateSequence();
        std::vector<float> logits;
        ForwardChunk p1{s1, std::span<const int32_t>(g.tokens.data(), g.prompt_len), 1};
        ASSERT_TRUE(b->Forward({&p1, 1}, &logits).ok());
        EXPECT_EQ(b->num_step_graphs(), 0u) << "a prefill step must not make a graph";
        for (int t = g.prompt_len; t < T; ++t) {
          std::vector<ForwardChunk> batch = {{s1, std::span<const int32_t>(&g.tokens[t], 1), 1}};
          // The second sequence decodes the same tokens from position 0 on.
          const int t2 = t - g.prompt_len;
          if (t2 >= 5) batch.push_back({s2, std::span<const int32_t>(&g.tokens[t2 - 5], 1), 1});
          Status st = b->Forward(batch, &logits);
          ASSERT_TRUE(st.ok()) << st.ToString();
          runs[use].insert(runs[use].end(), logits.begin(), logits.begin() + V);
        }
        graphs[use] = b->num_step_graphs();
        b->ReleaseSequence(s1);
        b->ReleaseSequence(s2);
      }
      EXPECT_EQ(graphs[0], 0u);
      EXPECT_GE(graphs[1], 2u) << "batch 1 and batch 2 decode graphs";
      const bool same = runs[0] == runs[1];
      EXPECT_TRUE(same) << "graph replay differs from eager launches";
      const size_t begin = static_cast<size_t>(g.prompt_len) * V;
      const float worst = MaxDiff(runs[1], std::vector<float>(g.logits.begin() + begin, g.logits.end()),
                                  0, runs[1].size(), nullptr);
      const double tol = precision == "f32" ? kF32Tolerance : kBf16RelTolerance * g.rms;
      // (bf16 decisions may flip against the golden run: Bf16Precision...
      // above bounds that precision.)
      if (precision == "f32") {
        EXPECT_LE(worst, tol);
      }
      gpu_testing::Report("decode_graphs",
                          std::string(model) + " " + precision + " " + std::to_string(graphs[1]) +
                              " graphs",
                          "replay " + std::string(same ? "bit-exact" : "DIFFERS") +
                              ", max|diff| vs golden " + std::to_string(worst),
                          same && graphs[1] >= 2);
    }
  }
}

TEST(CudaGolden, BatchedSequencesMatchSeparateRuns) {
  DMS_SKIP_WITHOUT_GPU();
  const std::string dir = testing::TestDataDir() + "/models/dms-neuron-w16-long";
  const Golden g = LoadGoldenModel(dir);
  auto b = MakeBackend(dir, "f32");
  ASSERT_TRUE(b);
  const int V = b->config().vocab_size;
  // Three sequences: prefix lengths 300, 150, 77 of the golden tokens, fed
  // together in uneven steps (prefills and decodes mixed in one step).
  std::vector<SeqId> seqs;
  for (int i = 0; i < 3; ++i) seqs.push_back(*b->CreateSequence());
  const int lens[3] = {300, 150, 77};
  int fed[3] = {0, 0, 0};
  std::vector<std::vector<float>> got(3);
  std::mt19937 rng(3);
  while (fed[0] < lens[0] || fed[1] < lens[1] || fed[2] < lens[2]) {
    std::vector<ForwardChunk> batch;
    for (int i = 0; i < 3; ++i) {
      if (fed[i] >= lens[i]) continue;
      const int n = std::min(lens[i] - fed[i], rng() % 3 == 0 ? 1 : static_cast<int>(1 + rng() % 60));
      batch.push_back({seqs[i], std::span<const int32_t>(g.tokens.data() + fed[i], n), n});
      fed[i] += n;
    }
    std::vector<float> logits;
    Status st = b->Forward(batch, &logits);
    ASSERT_TRUE(st.ok()) << st.ToString();
    size_t off = 0;
    for (const ForwardChunk& c : batch) {
      const int i = static_cast<int>(std::find(seqs.begin(), seqs.end(), c.seq) - seqs.begin());
      got[i].insert(got[i].end(), logits.begin() + off, logits.begin() + off + c.num_logits * V);
      off += static_cast<size_t>(c.num_logits) * V;
    }
  }
  for (int i = 0; i < 3; ++i) {
    const float worst = MaxDiff(got[i], g.logits, 0, static_cast<size_t>(lens[i]) * V, nullptr);
    EXPECT_LE(worst, kF32Tolerance) << "sequence " << i;
    gpu_testing::Report("batched", "3 sequences, mixed steps, seq " + std::to_string(i),
                        "max|diff| vs golden " + std::to_string(worst), worst <= kF32Tolerance);
    b->ReleaseSequence(seqs[i]);
  }
  EXPECT_EQ(b->PoolStats().blocks_used, 0);
}

// A prompt's chunks ask for no logits but the last one's last rows: the
// last layer then runs o_proj and the MLP on those rows alone (and on none
// for the other chunks; CudaBackend::LastLayerRows). The rows that come back,
// and a decode step after them, against the same steps asking for every row
// (the all-rows path) and, in f32, against the goldens.
TEST(CudaGolden, LastLayerOnTheLogitRowsAloneMatchesAllRows) {
  DMS_SKIP_WITHOUT_GPU();
  const std::string dir = testing::TestDataDir() + "/models/dms-neuron-w16-long";
  const Golden g = LoadGoldenModel(dir);
  const int T = static_cast<int>(g.tokens.size());
  ASSERT_GE(T, 100);
  for (const std::string precision : {"f32", "bf16"}) {
    auto b = MakeBackend(dir, precision);
    ASSERT_TRUE(b);
    const size_t V = b->config().vocab_size;
    const int a = (T - 1) / 3, c = T - 1 - 2 * a;  // three prompt chunks, then a decode step
    const int chunk_len[3] = {a, a, c};
    // The prompt's last `asked` rows and the decode row; asked < 0: every row.
    auto run = [&](int asked) {
      std::vector<float> rows, logits;
      auto seq = b->CreateSequence();
      EXPECT_TRUE(seq.ok());
      int pos = 0;
      for (int i = 0; i < 3; ++i) {
        const int n = chunk_len[i];
        ForwardChunk ch{*seq, std::span<const int32_t>(g.tokens.data() + pos, n),
                        asked < 0 ? n : (i < 2 ? 0 : asked)};
        EXPECT_TRUE(b->Forward(std::span<const ForwardChunk>(&ch, 1), &logits).ok());
        EXPECT_EQ(logits.size(), static_cast<size_t>(ch.num_logits) * V);
        pos += n;
      }
      const int keep = asked < 0 ? c : asked;
      rows.assign(logits.end() - static_cast<ptrdiff_t>(keep * V), logits.end());
      ForwardChunk dec{*seq, std::span<const int32_t>(g.tokens.data() + pos, 1), 1};
      EXPECT_TRUE(b->Forward(std::span<const ForwardChunk>(&dec, 1), &logits).ok());
      rows.insert(rows.end(), logits.begin(), logits.end());
      b->ReleaseSequence(*seq);
      return rows;
    };
    const std::vector<float> all = run(-1);
    // The all-rows path differs from the cut one in GEMM shapes only (and so
    // in summation order): far below 1% of the logits' rms in bf16.
    const float tol = precision == "f32" ? kF32Tolerance : static_cast<float>(0.01 * g.rms);
    for (const int asked : {1, 3, 64}) {
      ASSERT_LE(asked, c);
      const std::vector<float> got = run(asked);
      const std::vector<float> want(all.end() - static_cast<ptrdiff_t>((asked + 1) * V), all.end());
      const float worst = MaxDiff(got, want, 0, want.size(), nullptr);
      float golden = 0;
      if (precision == "f32") {
        const size_t first = static_cast<size_t>(T - 1 - asked) * V;
        const std::vector<float> gold(g.logits.begin() + first, g.logits.begin() + first + want.size());
        golden = MaxDiff(got, gold, 0, gold.size(), nullptr);
        EXPECT_LE(golden, kF32Tolerance) << asked << " logit rows";
      }
      EXPECT_EQ(got.size(), want.size());
      EXPECT_LE(worst, tol) << precision << ", " << asked << " logit rows";
      gpu_testing::Report("last_layer_rows",
                          precision + ", chunks " + std::to_string(a) + "/" + std::to_string(a) + "/" +
                              std::to_string(c) + ", " + std::to_string(asked) + " logit rows, then decode",
                          "max|diff| vs all rows " + std::to_string(worst) +
                              (precision == "f32" ? ", vs golden " + std::to_string(golden) : ""),
                          worst <= tol);
    }
  }
}

// Greedy rows come back as summaries only (full_logits = false): the same
// argmax and maximum as the full rows of an identical backend, the
// log-sum-exp of SummarizeLogits, and the full rows of the other chunks
// unchanged, through prefill steps and graph-replayed decode steps.
TEST(CudaGolden, SummarisedRowsMatchTheFullRows) {
  DMS_SKIP_WITHOUT_GPU();
  const std::string dir = testing::TestDataDir() + "/models/dms-neuron-w16-long";
  const Golden g = LoadGoldenModel(dir);
  auto full = MakeBackend(dir, "bf16");
  auto mixed = MakeBackend(dir, "bf16");
  ASSERT_TRUE(full && mixed);
  const int V = full->config().vocab_size;
  std::vector<SeqId> a, b;
  for (int i = 0; i < 3; ++i) {
    a.push_back(*full->CreateSequence());
    b.push_back(*mixed->CreateSequence());
  }
  const int lens[3] = {120, 40, 77}, num_logits[3] = {3, 1, 2};
  const bool keep_rows[3] = {false, true, false};
  std::vector<std::vector<int32_t>> next(3);
  bool ok = true;
  for (int step = 0; step < 6; ++step) {  // one prefill step, then decode steps
    std::vector<ForwardChunk> ca, cb;
    for (int i = 0; i < 3; ++i) {
      std::span<const int32_t> t = step == 0 ? std::span<const int32_t>(g.tokens.data() + 7 * i, lens[i])
                                             : std::span<const int32_t>(next[i]);
      const int nl = step == 0 ? num_logits[i] : 1;
      ca.push_back({a[i], t, nl});
      cb.push_back({b[i], t, nl, keep_rows[i]});
    }
    ForwardResult ra, rb;
    ASSERT_TRUE(full->Forward(ca, &ra).ok());
    ASSERT_TRUE(mixed->Forward(cb, &rb).ok());
    ok &= testing::ExpectSummariesMatchFullRows(cb, V, ra, rb, 1e-12);
    ASSERT_EQ(rb.summaries.size(), ra.summaries.size()) << "step " << step;
    // The next tokens: each chunk's last row, greedy.
    size_t row = 0;
    for (int i = 0; i < 3; ++i) {
      row += cb[i].num_logits;
      next[i] = {rb.summaries[row - 1].argmax};
    }
  }
  gpu_testing::Report("summaries", "3 sequences, prefill + 5 decode steps", "argmax/max exact, lse 1e-12",
                      ok);
}

// Rows sampled on the device (ForwardChunk::sampling) against SampleRow on
// the host over the same rows brought back in full by a second backend with
// the same steps (the logits are the same bits: SummarisedRowsMatchTheFullRows),
// with penalties accumulating in the device state, logprobs and top-n.
TEST(CudaGolden, SampledRowsAreTheHostSamplersOnTheFullRows) {
  DMS_SKIP_WITHOUT_GPU();
  const std::string dir = testing::TestDataDir() + "/models/dms-neuron-w16-long";
  const Golden g = LoadGoldenModel(dir);
  auto full = MakeBackend(dir, "bf16");
  auto dev = MakeBackend(dir, "bf16", 1024, /*device_sampling=*/true);
  ASSERT_TRUE(full && dev);
  ASSERT_TRUE(dev->info().sampling);
  const int V = full->config().vocab_size;
  std::vector<RowSampling> params(4);
  params[0].params.temperature = 0.6f, params[0].params.top_p = 0.95f, params[0].params.top_k = 20;
  params[1].params.temperature = 1.0f;
  params[2].params.temperature = 0.8f, params[2].params.repetition_penalty = 1.3f;
  params[2].params.presence_penalty = 0.5f, params[2].params.frequency_penalty = 0.3f;
  params[2].params.logprobs = 5;
  params[3].params.temperature = 0.0f, params[3].params.repetition_penalty = 1.2f,
  params[3].params.logprobs = 3;
  std::vector<SeqId> a, b;
  std::vector<TokenHistory> history;
  std::vector<std::vector<int32_t>> next(4);
  for (int i = 0; i < 4; ++i) {
    a.push_back(*full->CreateSequence());
    b.push_back(*dev->CreateSequence());
    const std::span<const int32_t> prompt(g.tokens.data() + 5 * i, 30 + 11 * i);
    ASSERT_TRUE(dev->SetTokenHistory(b[i], prompt, {}).ok());
    history.emplace_back(V);
    history.back().AddPrompt(prompt);
    next[i].assign(prompt.begin(), prompt.end());
  }
  SampleScratch scratch;
  int compared = 0, mismatched = 0;
  for (int step = 0; step < 9; ++step) {  // the prompts in one step, then decode steps
    std::vector<ForwardChunk> ca, cb;
    for (int i = 0; i < 4; ++i) {
      params[i].uniform = CounterUniform(1000 + i, step);
      ca.push_back({a[i], next[i], 1, true});
      cb.push_back({b[i], next[i], 1, false, &params[i]});
    }
    ForwardResult ra, rb;
    ASSERT_TRUE(full->Forward(ca, &ra).ok());
    ASSERT_TRUE(dev->Forward(cb, &rb).ok());
    ASSERT_EQ(rb.sampled.size(), 4u);
    for (int i = 0; i < 4; ++i) {
      const std::span<const float> row(ra.logits.data() + static_cast<size_t>(i) * V, V);
      const SampledToken want = SampleRow(params[i].params, row, ra.summaries[i], params[i].uniform,
                                          history[i], &scratch);
      const SampledToken& got = rb.sampled[i];
      ++compared;
      if (got.id != want.id) ++mismatched;
      EXPECT_EQ(got.id, want.id) << "sequence " << i << " step " << step;
      EXPECT_NEAR(got.logprob, want.logprob, 1e-5);
      ASSERT_EQ(got.top.size(), want.top.size());
      for (size_t k = 0; k < want.top.size(); ++k) {
        EXPECT_EQ(got.top[k].first, want.top[k].first);
        EXPECT_NEAR(got.top[k].second, want.top[k].second, 1e-5);
      }
      history[i].AddOutput(want.id);
      next[i] = {want.id};
    }
  }
  gpu_testing::Report("sampled rows",
                      std::to_string(compared) + " rows, 4 parameter sets with penalties",
                      "the host sampler's token on the same row", mismatched == 0);
}

// The golden models are small (head_dim <= 64), so the wgmma attention core
// (head_dim 128 on sm_90) is checked end to end here: a generated model of
// Qwen3's head geometry (hd 128, GQA 2, window 64, 87.5% eviction), bf16
// prefill in one step and in chunks (128-row tiles, the o_proj input
// written by the kernel, the sparse walk over the kept keys, chunks over the
// compacted cache, a decode step between) against the same backend on the
// mma.sync core in one step (itself checked against the goldens and the
// CPU reference). One layer, so every decision comes before any attention
// and both runs evict the same keys; what differs is summation order only.
// The "small" demo geometry (head_dim 128, GQA 2) cut to `layers` layers and
// a 2048-token vocabulary, written fresh to dir.
auto MakeSmallHeadDim128Model(const std::string& dir, int layers, uint64_t seed) {
  fs::remove_all(dir);
  DemoModelOptions mo;
  mo.preset = "small";
  mo.num_layers = layers;
  mo.vocab_size = 2048;
  mo.seed = seed;
  return MakeDemoModel(dir, mo);
}

TEST(CudaGolden, HeadDim128TensorCorePrefillMatchesTheMmaSyncCore) {
  DMS_SKIP_WITHOUT_GPU();
  if (!cuda::DmsAttentionWgmmaAvailable()) GTEST_SKIP() << "no wgmma on this device";
  const std::string dir = ::testing::TempDir() + "/dms-hd128-" + std::to_string(::getpid());
  auto made = MakeSmallHeadDim128Model(dir, 1, 5);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  ASSERT_EQ(made->config.head_dim, 128);
  auto b = MakeBackend(dir, "bf16");
  ASSERT_TRUE(b);
  const int T = 900;
  std::mt19937 rng(3);
  std::vector<int32_t> tokens(T);
  for (int32_t& t : tokens) t = static_cast<int32_t>(rng() % b->config().vocab_size);
  cuda::SetDmsAttentionMmaCore(cuda::AttnMmaCore::kMmaSync);
  ASSERT_EQ(cuda::DmsAttentionMmaRows(128), cuda::kAttnMmaRows);
  const ScoreResult want = Score(*b, tokens, {T});
  cuda::SetDmsAttentionMmaCore(cuda::AttnMmaCore::kAuto);
  ASSERT_EQ(cuda::DmsAttentionMmaRows(128), cuda::kAttnWgmmaRows);
  double ss = 0;
  for (float x : want.logits) ss += static_cast<double>(x) * x;
  // Two bf16 runs that differ in summation order: ~1% of the logits' rms
  // measured; a wrong key or tile is far more.
  const double tol = 0.04 * std::sqrt(ss / want.logits.size());
  int evicted = 0;
  for (uint8_t d : want.decisions) evicted += d;
  for (const std::vector<int>& chunks :
       {std::vector<int>{T}, std::vector<int>{300, 600}, std::vector<int>{512, 1, 387}}) {
    const ScoreResult r = Score(*b, tokens, chunks);
    EXPECT_EQ(r.decisions, want.decisions);
    EXPECT_EQ(r.stats.retained, want.stats.retained);
    size_t at = 0;
    const float worst = MaxDiff(r.logits, want.logits, 0, want.logits.size(), &at);
    std::printf("  hd128 wgmma, %zu chunks vs mma.sync one step: max|diff| %.3g (tol %.3g), "
                "%d of %zu decisions evict\n",
                chunks.size(), worst, tol, evicted, want.decisions.size());
    EXPECT_LE(worst, tol) << "worst at position " << at / 2048 << " token " << at % 2048;
  }
  fs::remove_all(dir);
}

// Every decode attention kernel (CudaTuning::decode_attention) against the
// SIMT one: a head_dim-128 model, three sequences decoding side by side
// (graphs on) past the DMS window, bf16. The kernels differ in summation
// order and in rounding P to bf16 (mma): a few % of the logits' rms at most.
TEST(CudaGolden, DecodeAttentionKernelsMatchTheSimtKernel) {
  DMS_SKIP_WITHOUT_GPU();
  const std::string dir = ::testing::TempDir() + "/dms-decode-" + std::to_string(::getpid());
  ASSERT_TRUE(MakeSmallHeadDim128Model(dir, 2, 9).ok());
  const int kPrompt[3] = {700, 33, 300}, kSteps = 80;
  auto run = [&](const std::string& kernel, std::vector<uint8_t>* decisions) {
    CudaTuning t;
    t.decode_attention = kernel;
    auto b = MakeBackend(dir, "bf16", 1024, false, t);
    std::vector<float> rows;
    if (!b) return rows;
    const int V = b->config().vocab_size;
    std::vector<SeqId> seqs;
    std::vector<float> logits;
    std::mt19937 r(4);
    for (int n : kPrompt) {
      std::vector<int32_t> prompt(n);
      for (int32_t& x : prompt) x = static_cast<int32_t>(r() % V);
      seqs.push_back(*b->CreateSequence());
      ForwardChunk c{seqs.back(), prompt, 1};
      EXPECT_TRUE(b->Forward({&c, 1}, &logits).ok());
    }
    std::vector<uint8_t> trace;
    EXPECT_TRUE(b->set_decision_trace(&trace).ok());
    for (int step = 0; step < kSteps; ++step) {
      std::vector<int32_t> tok(seqs.size());
      std::vector<ForwardChunk> batch;
      for (size_t i = 0; i < seqs.size(); ++i) {
        tok[i] = static_cast<int32_t>((step * 131 + i * 17) % V);
        batch.push_back({seqs[i], std::span<const int32_t>(&tok[i], 1), 1});
      }
      trace.clear();
      EXPECT_TRUE(b->Forward(batch, &logits).ok());
      rows.insert(rows.end(), logits.begin(), logits.end());
      decisions->insert(decisions->end(), trace.begin(), trace.end());
    }
    EXPECT_TRUE(b->set_decision_trace(nullptr).ok());
    for (SeqId s : seqs) b->ReleaseSequence(s);
    return rows;
  };
  std::vector<uint8_t> want_decisions;
  const std::vector<float> want = run("simt", &want_decisions);
  ASSERT_FALSE(want.empty());
  double ss = 0;
  for (float x : want) ss += static_cast<double>(x) * x;
  const double tol = 0.04 * std::sqrt(ss / want.size());
  for (const char* kernel : {"streamed", "mma"}) {
    std::vector<uint8_t> decisions;
    const std::vector<float> got = run(kernel, &decisions);
    ASSERT_EQ(got.size(), want.size()) << kernel;
    size_t at = 0;
    const float worst = MaxDiff(got, want, 0, want.size(), &at);
    size_t flips = 0;
    for (size_t i = 0; i < decisions.size() && i < want_decisions.size(); ++i)
      flips += decisions[i] != want_decisions[i];
    std::printf("  decode_attention=%s vs simt: max|diff| %.3g (tol %.3g), %zu of %zu decisions "
                "differ\n",
                kernel, worst, tol, flips, decisions.size());
    EXPECT_LE(worst, tol) << kernel << ": worst at row " << at / 2048;
    EXPECT_LE(flips, decisions.size() / 100) << kernel;
  }
  fs::remove_all(dir);
}

TEST(CudaGolden, ErrorsAreTheCpuBackendsAndLeaveNoTrace) {
  DMS_SKIP_WITHOUT_GPU();
  const std::string dir = testing::TestDataDir() + "/models/qwen3-plain";
  auto ckpt = Checkpoint::Load(dir);
  ASSERT_TRUE(ckpt.ok());
  std::shared_ptr<const Checkpoint> shared(std::move(*ckpt));
  CudaBackendOptions o;
  o.precision = "f16";
  auto bad = CudaBackend::Create(shared, o);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().ToString(),
            "INVALID_ARGUMENT: backend 'cuda': precision 'f16' is not supported (expected bf16 or f32)");
  o.precision = "bf16";
  o.max_batch_tokens = 64;
  o.kv_num_blocks = 20;  // 2 layers x 2 heads: 5 blocks of 16 per head
  auto made = CudaBackend::Create(shared, o);
  ASSERT_TRUE(made.ok()) << made.status().ToString();
  CudaBackend& b = **made;
  const SeqId s = *b.CreateSequence();
  std::vector<float> out;
  const std::vector<int32_t> ok_tokens(10, 5), bad_token = {5, 384};
  ForwardChunk unknown{s + 1, ok_tokens, 1};
  EXPECT_EQ(b.Forward({&unknown, 1}, &out).ToString(), "INVALID_ARGUMENT: unknown sequence id 1");
  ForwardChunk vocab{s, bad_token, 1};
  EXPECT_EQ(b.Forward({&vocab, 1}, &out).ToString(),
            "INVALID_ARGUMENT: token id 384 outside the vocabulary [0, 384)");
  const std::vector<int32_t> many(65, 1);
  ForwardChunk big{s, many, 1};
  EXPECT_EQ(b.Forward({&big, 1}, &out).ToString(),
            "INVALID_ARGUMENT: step of 65 tokens exceeds the CUDA backend's max_batch_tokens 64");
  // 60 tokens fit (4 blocks a head); 30 more do not: nothing is applied.
  const std::vector<int32_t> sixty(60, 7), thirty(30, 7);
  ForwardChunk first{s, sixty, 1};
  ASSERT_TRUE(b.Forward({&first, 1}, &out).ok());
  ForwardChunk second{s, thirty, 1};
  EXPECT_EQ(b.Forward({&second, 1}, &out).code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(b.SequenceStats(s).logical_tokens, 60);
  ForwardChunk small{s, std::span<const int32_t>(thirty.data(), 4), 1};
  EXPECT_TRUE(b.Forward({&small, 1}, &out).ok());
  EXPECT_EQ(b.SequenceStats(s).logical_tokens, 64);
  b.ReleaseSequence(s);
  EXPECT_EQ(b.PoolStats().blocks_used, 0);
}

TEST(CudaModule, DlopenPathMatchesTheDirectBackend) {
  DMS_SKIP_WITHOUT_GPU();
  const std::string dir = testing::TestDataDir() + "/models/dms-proj-w16-gqa4";
  const Golden g = LoadGoldenModel(dir);
  for (const std::string kind : {"cuda", "auto"}) {
    auto ckpt = Checkpoint::Load(dir);
    ASSERT_TRUE(ckpt.ok());
    BackendOptions o;
    o.kind = kind;
    o.precision = "f32";
    auto b = CreateBackend(std::shared_ptr<const Checkpoint>(std::move(*ckpt)), o);
    ASSERT_TRUE(b.ok()) << b.status().ToString();
    EXPECT_EQ((*b)->info().name, "cuda");
    auto seq = (*b)->CreateSequence();
    ASSERT_TRUE(seq.ok());
    ForwardChunk c{*seq, g.tokens, static_cast<int>(g.tokens.size())};
    std::vector<float> logits;
    ASSERT_TRUE((*b)->Forward({&c, 1}, &logits).ok());
    const float worst = MaxDiff(logits, g.logits, 0, g.logits.size(), nullptr);
    EXPECT_LE(worst, kF32Tolerance);
    gpu_testing::Report("dlopen", "CreateBackend(\"" + kind + "\") " + g.name + " " + (*b)->info().device,
                        "max|diff| " + std::to_string(worst), worst <= kF32Tolerance);
  }
}

TEST(CudaModule, ScoreCliWithBackendCuda) {
  DMS_SKIP_WITHOUT_GPU();
  // qwen3-plain has no DMS decisions, so bf16 (the CLI's default precision)
  // must match at every position.
  const std::string dir = testing::TestDataDir() + "/models/qwen3-plain";
  const Golden g = LoadGoldenModel(dir);
  testing::TempDir tmp;
  std::string tokens;
  for (size_t i = 0; i < g.tokens.size(); ++i) {
    if (i > 0) tokens.push_back(',');
    tokens.append(std::to_string(g.tokens[i]));
  }
  const std::string cmd = testing::BinDir() + "/dms-engine score --backend cuda --model " + dir +
                          " --tokens " + tokens + " --chunks 120,1,1,1,77 --out " +
                          tmp.File("logits.f32") + " --stats " + tmp.File("stats.json");
  const testing::CommandResult r = testing::RunCommand(cmd);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string bytes = testing::ReadFile(tmp.File("logits.f32"));
  std::vector<float> got(bytes.size() / 4);
  std::memcpy(got.data(), bytes.data(), bytes.size());
  ASSERT_EQ(got.size(), g.logits.size());
  const float worst = MaxDiff(got, g.logits, 0, got.size(), nullptr);
  EXPECT_LE(worst, kBf16RelTolerance * g.rms);
  auto stats = nlohmann::json::parse(testing::ReadFile(tmp.File("stats.json")));
  EXPECT_EQ(stats["backend"], "cuda");
  EXPECT_EQ(stats["retained"].get<std::vector<std::vector<int>>>(), g.retained);
  gpu_testing::Report("score_cli", "dms-engine score --backend cuda qwen3-plain",
                      "max|diff| " + std::to_string(worst), worst <= kBf16RelTolerance * g.rms);
}

TEST(CudaModule, MemoryPlanIsReported) {
  DMS_SKIP_WITHOUT_GPU();
  auto b = MakeBackend(testing::TestDataDir() + "/models/dms-neuron-w16-long", "bf16");
  ASSERT_TRUE(b);
  const CudaMemoryPlan& p = b->memory_plan();
  std::printf("  memory plan: weights %zu B, KV %zu B, workspace %zu B, cuBLAS %zu B; %s\n",
              p.weights, p.kv_cache, p.workspace, p.cublas, b->info().device.c_str());
  EXPECT_GT(p.weights, 0u);
  EXPECT_GT(p.kv_cache, 0u);
  EXPECT_GT(p.workspace, 0u);
}

}  // namespace
}  // namespace dms
