// Demo checkpoints (make-model): presets, determinism, tokenizer copy, and
// the eviction-rate arrangement checked by recomputing DMS decisions from the
// written weights.
#include "engine/model/demo_model.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>

#include "engine/model/checkpoint.h"
#include "engine/model/counter_rng.h"
#include "engine/model/demo_weights.h"
#include "engine/model/safetensors_writer.h"
#include "common/half.h"
#include "tests/test_util.h"

namespace dms {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;

// A small custom geometry so each test writes a few hundred kB.
DemoModelOptions Small(int vocab = 2048) {
  DemoModelOptions o;
  o.preset = "tiny";
  o.num_layers = 2;
  o.hidden_size = 64;
  o.num_q_heads = 4;
  o.num_kv_heads = 2;
  o.head_dim = 16;
  o.intermediate_size = 128;
  o.vocab_size = vocab;
  o.window_size = 8;
  o.seed = 7;
  return o;
}

std::vector<float> ToFloat(const TensorView* t) {
  std::vector<float> out(t->numel());
  for (int64_t i = 0; i < t->numel(); ++i) {
    uint16_t h;
    std::memcpy(&h, t->data + 2 * i, 2);
    out[i] = Bf16ToFloat(h);
  }
  return out;
}

std::vector<float> RmsNorm(const float* x, int n, const std::vector<float>& w, double eps) {
  double ss = 0;
  for (int i = 0; i < n; ++i) ss += double{x[i]} * x[i];
  const double inv = 1.0 / std::sqrt(ss / n + eps);
  std::vector<float> out(n);
  for (int i = 0; i < n; ++i) out[i] = static_cast<float>(x[i] * inv * w[i]);
  return out;
}

// Fraction of (token, KV head) decisions that evict in `layer`, computed as
// spec section 2 says from the layer input x. `x_of(v)` gives the input for
// token v (the embedding row at layer 0).
double EvictionRate(const Checkpoint& ckpt, int layer,
                    const std::function<std::vector<float>(int)>& x_of) {
  const ModelConfig& c = ckpt.config();
  const LayerWeights& lw = ckpt.weights().layers[layer];
  const int D = c.hidden_size, hd = c.head_dim;
  int64_t evict = 0, total = 0;
  const auto ln = ToFloat(lw.input_layernorm);
  if (c.dms.separate_alpha) {
    const auto nw = ToFloat(lw.dms_proj_alpha_norm);
    const auto wa = ToFloat(lw.dms_proj_alpha);
    for (int v = 0; v < c.vocab_size; ++v) {
      const auto x = x_of(v);
      const auto h = RmsNorm(x.data(), D, nw, c.rms_norm_eps);
      for (int k = 0; k < c.num_kv_heads; ++k) {
        double a = 0;
        for (int j = 0; j < D; ++j) a += double{wa[k * D + j]} * h[j];
        evict += a * c.dms.alpha_scale - c.dms.initial_alpha_offset > 0;
        ++total;
      }
    }
  } else {
    const auto wq = ToFloat(lw.q_proj);
    const auto qn = ToFloat(lw.q_norm);
    for (int v = 0; v < c.vocab_size; ++v) {
      const auto x = x_of(v);
      const auto h = RmsNorm(x.data(), D, ln, c.rms_norm_eps);
      for (int k = 0; k < c.num_kv_heads; ++k) {
        const int head = k * c.group_size();
        std::vector<float> q(hd);
        for (int i = 0; i < hd; ++i) {
          double a = 0;
          for (int j = 0; j < D; ++j) a += double{wq[(int64_t{head} * hd + i) * D + j]} * h[j];
          q[i] = static_cast<float>(a);
        }
        const auto qnormed = RmsNorm(q.data(), hd, qn, c.rms_norm_eps);
        evict += qnormed[hd - 1] * c.dms.alpha_scale - c.dms.initial_alpha_offset > 0;
        ++total;
      }
    }
  }
  return static_cast<double>(evict) / total;
}

std::function<std::vector<float>(int)> EmbeddingRows(const Checkpoint& ckpt) {
  auto emb = std::make_shared<std::vector<float>>(ToFloat(ckpt.weights().embed_tokens));
  const int D = ckpt.config().hidden_size;
  return [emb, D](int v) {
    return std::vector<float>(emb->begin() + int64_t{v} * D, emb->begin() + int64_t{v + 1} * D);
  };
}

std::string ReadAll(const std::string& dir) {
  std::string all;
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  for (const auto& n : names) all += n + "\n" + testing::ReadFile(dir + "/" + n);
  return all;
}

TEST(DemoModelTest, PresetsHaveTheAgreedGeometry) {
  DemoModelOptions o;
  o.preset = "qwen3-8b";
  auto text = DemoConfigJson(o);
  ASSERT_TRUE(text.ok()) << text.status().message();
  auto c = ParseModelConfig(*text, "qwen3-8b");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->num_layers, 36);
  EXPECT_EQ(c->hidden_size, 4096);
  EXPECT_EQ(c->num_q_heads, 32);
  EXPECT_EQ(c->num_kv_heads, 8);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->intermediate_size, 12288);
  EXPECT_EQ(c->vocab_size, 151936);
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
  EXPECT_EQ(c->max_position_embeddings, 40960);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_TRUE(c->dms.enabled);
  EXPECT_FALSE(c->dms.separate_alpha);
  EXPECT_EQ(c->dms.window_size, 512);
  EXPECT_DOUBLE_EQ(c->dms.cr, 8.0);
  EXPECT_EQ(c->eos_token_ids, std::vector<int>{151645});
  // Qwen3-8B: 8,190,735,360 parameters, 5 shards of <= 4 GB like the real one.
  auto w = DemoWeights::Create(*c, 0, 0.875);
  ASSERT_TRUE(w.ok());
  uint64_t bytes = 0;
  for (const auto& s : w->specs()) bytes += s.nbytes();
  EXPECT_EQ(bytes, 2ull * 8190735360ull);
  EXPECT_EQ(PlanShards(w->specs(), 4'000'000'000).size(), 5u);

  o.preset = "tiny";
  c = ParseModelConfig(*DemoConfigJson(o), "tiny");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->vocab_size, 151936);
  EXPECT_EQ(c->hidden_size, 256);
  EXPECT_EQ(c->dms.window_size, 16);
  auto tiny = DemoWeights::Create(*c, 0, 0.875);
  ASSERT_TRUE(tiny.ok());
  bytes = 0;
  for (const auto& s : tiny->specs()) bytes += s.nbytes();
  EXPECT_LT(bytes, 100'000'000u);

  o.preset = "small";
  c = ParseModelConfig(*DemoConfigJson(o), "small");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->num_layers, 8);
  EXPECT_EQ(c->hidden_size, 1024);
  EXPECT_EQ(c->num_q_heads, 16);
  EXPECT_EQ(c->num_kv_heads, 8);
  EXPECT_EQ(c->head_dim, 128);
  EXPECT_EQ(c->dms.window_size, 64);
}

TEST(DemoModelTest, SameSeedSameBytesWhateverTheThreads) {
  TempDir a, b, c;
  DemoModelOptions o = Small();
  o.threads = 1;
  ASSERT_TRUE(MakeDemoModel(a.File("m"), o).ok());
  o.threads = 3;
  ASSERT_TRUE(MakeDemoModel(b.File("m"), o).ok());
  const std::string bytes = ReadAll(a.File("m"));
  EXPECT_EQ(bytes, ReadAll(b.File("m")));
  o.seed = 8;
  ASSERT_TRUE(MakeDemoModel(c.File("m"), o).ok());
  EXPECT_NE(testing::ReadFile(a.File("m/model.safetensors")),
            testing::ReadFile(c.File("m/model.safetensors")));
}

TEST(DemoModelTest, ShardedOutputLoads) {
  TempDir tmp;
  DemoModelOptions o = Small();
  o.max_shard_bytes = 200'000;
  auto report = MakeDemoModel(tmp.File("m"), o);
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_EQ(report->files.front(), "config.json");
  EXPECT_EQ(report->files.back(), "model.safetensors.index.json");
  EXPECT_GT(report->files.size(), 3u);
  auto ckpt = Checkpoint::Load(tmp.File("m"));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().message();
  EXPECT_TRUE((*ckpt)->sharded());
  EXPECT_EQ((*ckpt)->num_parameters(), report->num_parameters);
}

TEST(DemoModelTest, LayerZeroDecisionsEvictTheRequestedFraction) {
  for (double rate : {0.875, 0.5, 0.2, 0.0, 1.0}) {
    TempDir tmp;
    DemoModelOptions o = Small();
    o.evict_rate = rate;
    ASSERT_TRUE(MakeDemoModel(tmp.File("m"), o).ok());
    auto ckpt = Checkpoint::Load(tmp.File("m"));
    ASSERT_TRUE(ckpt.ok());
    for (int layer = 0; layer < 2; ++layer) {
      EXPECT_NEAR(EvictionRate(**ckpt, layer, EmbeddingRows(**ckpt)), rate, 0.005)
          << "rate " << rate << " layer " << layer;
    }
  }
}

TEST(DemoModelTest, ProjectionVariantEvictsTheRequestedFraction) {
  TempDir tmp;
  DemoModelOptions o = Small();
  o.variant = DemoDmsVariant::kProjection;
  ASSERT_TRUE(MakeDemoModel(tmp.File("m"), o).ok());
  auto ckpt = Checkpoint::Load(tmp.File("m"));
  ASSERT_TRUE(ckpt.ok());
  ASSERT_TRUE((*ckpt)->config().dms.separate_alpha);
  EXPECT_NEAR(EvictionRate(**ckpt, 1, EmbeddingRows(**ckpt)), 0.875, 0.01);
}

// Deeper layers see the embedding plus what earlier layers wrote, which never
// touches the reserved channels. Adding such updates (residual RMS grown 1.5x)
// barely moves the rate.
TEST(DemoModelTest, RateHoldsWhenTheResidualStreamGrows) {
  TempDir tmp;
  ASSERT_TRUE(MakeDemoModel(tmp.File("m"), Small()).ok());
  auto ckpt = Checkpoint::Load(tmp.File("m"));
  ASSERT_TRUE(ckpt.ok());
  const int D = 64;
  auto rows = EmbeddingRows(**ckpt);
  auto grown = [&](int v) {
    auto x = rows(v);
    const float sigma = 1.0f / 8.0f;  // embedding RMS, 1/sqrt(D)
    for (int j = 0; j < D - 1 - 8; ++j) x[j] += 1.1f * sigma * rng::Normal(99, v * D + j);
    return x;
  };
  EXPECT_NEAR(EvictionRate(**ckpt, 1, grown), 0.875, 0.02);
}

TEST(DemoModelTest, ReservedChannelsAreNeverWritten) {
  TempDir tmp;
  ASSERT_TRUE(MakeDemoModel(tmp.File("m"), Small()).ok());
  auto ckpt = Checkpoint::Load(tmp.File("m"));
  ASSERT_TRUE(ckpt.ok());
  const int D = 64, K = 8;
  for (const LayerWeights& l : (*ckpt)->weights().layers) {
    for (const TensorView* t : {l.o_proj, l.down_proj}) {
      const auto w = ToFloat(t);
      const int64_t cols = t->shape[1];
      for (int row = D - 1 - K; row < D; ++row) {
        for (int64_t j = 0; j < cols; ++j) ASSERT_EQ(w[row * cols + j], 0.0f) << t->name;
      }
      double ss = 0;
      for (int64_t j = 0; j < cols; ++j) ss += w[j] * w[j];
      EXPECT_GT(ss, 0.0) << t->name << " row 0 is random";
    }
  }
  const auto emb = ToFloat((*ckpt)->weights().embed_tokens);
  for (int v = 0; v < 2048; ++v) ASSERT_EQ(emb[v * D + D - 1], emb[D - 1]);
  EXPECT_NEAR(emb[D - 1], 0.125f, 1e-3);  // m = 1/sqrt(D)
}

// Scaled like a real init: unit-RMS inputs give O(1) projections.
TEST(DemoModelTest, WeightScales) {
  TempDir tmp;
  ASSERT_TRUE(MakeDemoModel(tmp.File("m"), Small()).ok());
  auto ckpt = Checkpoint::Load(tmp.File("m"));
  ASSERT_TRUE(ckpt.ok());
  auto rms = [](const std::vector<float>& w) {
    double ss = 0;
    for (float x : w) ss += double{x} * x;
    return std::sqrt(ss / w.size());
  };
  const auto& lw = (*ckpt)->weights().layers[0];
  EXPECT_NEAR(rms(ToFloat(lw.k_proj)), 1.0 / 8, 0.01);  // 1/sqrt(D)
  EXPECT_NEAR(rms(ToFloat(lw.gate_proj)), 1.0 / 8, 0.01);
  EXPECT_NEAR(rms(ToFloat((*ckpt)->weights().embed_tokens)), 1.0 / 8, 0.01);
  for (float x : ToFloat(lw.q_norm)) ASSERT_EQ(x, 1.0f);
  for (float x : ToFloat(lw.input_layernorm)) ASSERT_EQ(x, 1.0f);
}

TEST(DemoModelTest, CopiesTheTokenizerWhenTheVocabularyFits) {
  TempDir tmp;
  const std::string tok = tmp.File("tok");
  fs::create_directories(tok);
  testing::WriteFile(tok + "/tokenizer.json", "{\"model\": {}}");
  testing::WriteFile(tok + "/tokenizer_config.json", "{}");
  DemoModelOptions o = Small(151936);
  o.num_layers = 1;
  o.hidden_size = 16;
  o.head_dim = 4;
  o.intermediate_size = 16;
  o.tokenizer_dir = tok;
  auto report = MakeDemoModel(tmp.File("m"), o);
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_TRUE(report->tokenizer_copied);
  EXPECT_EQ(testing::ReadFile(tmp.File("m/tokenizer.json")), "{\"model\": {}}");
  EXPECT_EQ(testing::ReadFile(tmp.File("m/tokenizer_config.json")), "{}");

  o.vocab_size = 1000;
  report = MakeDemoModel(tmp.File("small-vocab"), o);
  ASSERT_TRUE(report.ok());
  EXPECT_FALSE(report->tokenizer_copied);
  EXPECT_EQ(report->tokenizer_note,
            "vocab_size 1000 is smaller than the Qwen3 tokenizer's 151669 ids");
  EXPECT_FALSE(fs::exists(tmp.File("small-vocab/tokenizer.json")));

  o.tokenizer_dir = tmp.File("absent");
  report = MakeDemoModel(tmp.File("no-tok"), o);
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->tokenizer_note,
            "tokenizer not found (" + tmp.File("absent") + "/tokenizer.json is missing)");
}

TEST(DemoModelTest, Errors) {
  TempDir tmp;
  DemoModelOptions o = Small();
  o.preset = "huge";
  EXPECT_EQ(MakeDemoModel(tmp.File("a"), o).status().message(),
            "make-model: unknown preset 'huge' (expected one of tiny, small, qwen3-8b)");
  o = Small();
  o.hidden_size = 8;
  o.head_dim = 2;
  EXPECT_EQ(MakeDemoModel(tmp.File("a"), o).status().message(),
            "make-model: hidden_size must be at least 16, found 8");
  o = Small();
  o.num_q_heads = 6;
  o.num_kv_heads = 4;
  EXPECT_EQ(MakeDemoModel(tmp.File("a"), o).status().message(),
            "make-model: num_attention_heads (6) is not a multiple of num_key_value_heads (4)");
  o = Small();
  o.evict_rate = 1.5;
  EXPECT_EQ(MakeDemoModel(tmp.File("a"), o).status().message(),
            "make-model: evict rate must be in [0, 1], found 1.500000");
  EXPECT_FALSE(fs::exists(tmp.File("a")));  // nothing written on bad options
  testing::WriteFile(tmp.File("x"), "");
  EXPECT_EQ(MakeDemoModel(tmp.path(), Small()).status().message(),
            tmp.path() + ": already exists and is not empty");
}

}  // namespace
}  // namespace dms
