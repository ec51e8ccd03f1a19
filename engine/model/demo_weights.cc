#include "engine/model/demo_weights.h"

#include <algorithm>
#include <cmath>

#include "engine/model/counter_rng.h"
#include "common/half.h"

namespace dms {

namespace {

// The DMS logit row is gamma * (beta e_c + a . e_r). gamma = 2 makes the
// decision element about twice a typical q element, so the offset/scale
// threshold (0.05) is small next to its spread, and that head's rms(q) grows
// only a few percent.
constexpr float kGamma = 2.0f;
constexpr uint16_t kBf16One = 0x3f80;

float RoundBf16(float f) { return Bf16ToFloat(FloatToBf16(f)); }

// Zeroes row `row` (of `cols` columns) within elements [e0, e1) of a
// row-major matrix, then writes `entries` (column, value) into it.
void SetRow(int64_t row, int64_t cols, const std::vector<std::pair<int64_t, float>>& entries,
            int64_t e0, int64_t e1, uint16_t* out) {
  const int64_t r0 = std::max(e0, row * cols), r1 = std::min(e1, row * cols + cols);
  for (int64_t i = r0; i < r1; ++i) out[i - e0] = 0;
  for (const auto& [col, value] : entries) {
    const int64_t i = row * cols + col;
    if (i >= e0 && i < e1) out[i - e0] = FloatToBf16(value);
  }
}

}  // namespace

StatusOr<DemoWeights> DemoWeights::Create(const ModelConfig& config, uint64_t seed,
                                          double evict_rate) {
  const int D = config.hidden_size;
  if (D < 16) {
    return InvalidArgumentError("make-model: hidden_size must be at least 16, found " +
                                std::to_string(D));
  }
  if (!(evict_rate >= 0.0 && evict_rate <= 1.0)) {
    return InvalidArgumentError("make-model: evict rate must be in [0, 1], found " +
                                std::to_string(evict_rate));
  }
  DemoWeights w;
  w.config_ = config;
  w.seed_ = seed;
  w.num_token_channels_ = std::clamp(D / 8, 1, 8);
  const int K = w.num_token_channels_;
  const float sigma_e = 1.0f / std::sqrt(static_cast<float>(D));
  w.const_value_ = sigma_e;

  // Scales (fan-in init): q/k/v/gate/up and lm_head give O(1) outputs from a
  // unit-RMS input; the embedding has RMS sigma_e so a tied head also gives
  // O(1) logits; o_proj/down_proj write sigma_e/sqrt(L)-sized updates so the
  // residual stream stays about sigma_e in RMS through all layers.
  const float inv_sqrt_d = 1.0f / std::sqrt(static_cast<float>(D));
  const float residual = sigma_e / std::sqrt(static_cast<float>(config.num_layers));
  for (TensorSlot& slot : ExpectedTensors(config)) {
    Tensor t;
    t.key = rng::StreamKey(seed, slot.name);
    switch (slot.role) {
      case TensorRole::kEmbedTokens: t.stddev = sigma_e; break;
      case TensorRole::kOProj:
      case TensorRole::kDownProj:
        t.stddev = residual / std::sqrt(static_cast<float>(slot.shape[1]));
        break;
      case TensorRole::kQBias: case TensorRole::kKBias:
      case TensorRole::kVBias: case TensorRole::kOBias:
        t.stddev = 0.02f;
        break;
      case TensorRole::kDmsAlpha: t.stddev = 0; break;  // every row is a decision row
      case TensorRole::kFinalNorm: case TensorRole::kInputNorm:
      case TensorRole::kPostAttentionNorm: case TensorRole::kQNorm:
      case TensorRole::kKNorm: case TensorRole::kDmsAlphaNorm:
        t.ones = true;
        break;
      default: t.stddev = inv_sqrt_d; break;
    }
    w.specs_.push_back({slot.name, DType::kBF16, slot.shape});
    t.slot = std::move(slot);
    w.tensors_.push_back(std::move(t));
  }
  if (!config.dms.enabled) return w;

  // Token-channel values r[v][k] exactly as the embedding stores them (bf16).
  const int64_t V = config.vocab_size;
  const uint64_t embed_key = rng::StreamKey(seed, "model.embed_tokens.weight");
  std::vector<float> r(static_cast<size_t>(V) * K);
  for (int64_t v = 0; v < V; ++v) {
    for (int k = 0; k < K; ++k) {
      r[v * K + k] = RoundBf16(sigma_e * rng::Normal(embed_key, v * D + w.token_channel(k)));
    }
  }
  const float m = RoundBf16(w.const_value_);
  // Logit > 0 <=> gamma*(beta m + a.r)/rms(x) > thr * rms(q) (neuron; the
  // projection variant has no rms(q)). With rms(q)^2 ~ (hd-1 + q_last^2)/hd
  // this is q_last > thr' below; rms(x) ~ sigma_e at the first layer.
  const float scale = config.dms.alpha_scale;
  double thr = scale > 0 ? config.dms.initial_alpha_offset / scale : 0.0;
  if (!config.dms.separate_alpha) {
    const double hd = config.head_dim;
    thr = thr * std::sqrt((hd - 1) / std::max(1e-9, hd - thr * thr));
  }
  const double target = thr * sigma_e;  // in gamma units: B*m + S_v > target
  const int64_t n_keep = std::llround((1.0 - evict_rate) * static_cast<double>(V));
  const int L = config.num_layers, H = config.num_kv_heads;
  w.beta_.assign(static_cast<size_t>(L) * H, 0.0f);
  w.alpha_.assign(static_cast<size_t>(L) * H * K, 0.0f);
  std::vector<float> s(V);
  for (int l = 0; l < L; ++l) {
    for (int h = 0; h < H; ++h) {
      const uint64_t key =
          rng::StreamKey(seed, "dms.decision." + std::to_string(l) + "." + std::to_string(h));
      std::vector<double> a(K);
      double norm = 0;
      for (int k = 0; k < K; ++k) norm += (a[k] = rng::Normal(key, k)) * a[k];
      norm = std::sqrt(std::max(norm, 1e-12));
      float* A = &w.alpha_[(static_cast<size_t>(l) * H + h) * K];
      for (int k = 0; k < K; ++k) A[k] = RoundBf16(static_cast<float>(kGamma * a[k] / norm));
      for (int64_t v = 0; v < V; ++v) {
        double acc = 0;
        for (int k = 0; k < K; ++k) acc += double{A[k]} * r[v * K + k];
        s[v] = static_cast<float>(acc);
      }
      // Keep the n_keep tokens with the smallest S_v: put the cut between the
      // n_keep-th and the next value, so B*m = target - cut.
      double cut;
      if (n_keep <= 0) {
        cut = *std::min_element(s.begin(), s.end()) - kGamma * sigma_e;
      } else if (n_keep >= V) {
        cut = *std::max_element(s.begin(), s.end()) + kGamma * sigma_e;
      } else {
        std::nth_element(s.begin(), s.begin() + n_keep, s.end());
        const double above = s[n_keep];
        const double below = *std::max_element(s.begin(), s.begin() + n_keep);
        cut = 0.5 * (above + below);
      }
      w.beta_[static_cast<size_t>(l) * H + h] =
          RoundBf16(static_cast<float>((target - cut) / m));
    }
  }
  return w;
}

void DemoWeights::DecisionRow(int layer, int head,
                              std::vector<std::pair<int64_t, float>>* row) const {
  const int K = num_token_channels_, H = config_.num_kv_heads;
  const size_t lh = static_cast<size_t>(layer) * H + head;
  row->clear();
  row->push_back({const_channel(), beta_[lh]});
  for (int k = 0; k < K; ++k) row->push_back({token_channel(k), alpha_[lh * K + k]});
}

void DemoWeights::PatchChunk(const Tensor& t, int64_t e0, int64_t e1, uint16_t* out) const {
  const ModelConfig& c = config_;
  const bool neuron = c.dms.enabled && !c.dms.separate_alpha;
  const bool proj = c.dms.enabled && c.dms.separate_alpha;
  std::vector<std::pair<int64_t, float>> row;
  switch (t.slot.role) {
    case TensorRole::kEmbedTokens: {
      const int64_t D = c.hidden_size, col = const_channel();
      const uint16_t m = FloatToBf16(const_value_);
      for (int64_t r = e0 / D; r * D < e1; ++r) {
        const int64_t i = r * D + col;
        if (i >= e0 && i < e1) out[i - e0] = m;
      }
      break;
    }
    case TensorRole::kOProj:
    case TensorRole::kDownProj:
      // Layers never write the reserved channels.
      for (int k = 0; k <= num_token_channels_; ++k) {
        SetRow(c.hidden_size - 1 - k, t.slot.shape[1], {}, e0, e1, out);
      }
      break;
    case TensorRole::kQProj:
      if (!neuron) break;
      for (int h = 0; h < c.num_kv_heads; ++h) {
        DecisionRow(t.slot.layer, h, &row);
        const int64_t q_row = int64_t{h} * c.group_size() * c.head_dim + c.head_dim - 1;
        SetRow(q_row, c.hidden_size, row, e0, e1, out);
      }
      break;
    case TensorRole::kQBias:
      if (!neuron) break;
      for (int h = 0; h < c.num_kv_heads; ++h) {
        const int64_t i = int64_t{h} * c.group_size() * c.head_dim + c.head_dim - 1;
        if (i >= e0 && i < e1) out[i - e0] = 0;
      }
      break;
    case TensorRole::kDmsAlpha:
      if (!proj) break;
      for (int h = 0; h < c.num_kv_heads; ++h) {
        DecisionRow(t.slot.layer, h, &row);
        SetRow(h, c.hidden_size, row, e0, e1, out);
      }
      break;
    default:
      break;
  }
}

void DemoWeights::Fill(size_t tensor, uint64_t byte_offset, size_t nbytes, uint8_t* out) const {
  const Tensor& t = tensors_[tensor];
  const int64_t e0 = static_cast<int64_t>(byte_offset / 2);
  const int64_t n = static_cast<int64_t>(nbytes / 2);
  uint16_t* o = reinterpret_cast<uint16_t*>(out);
  if (t.ones) {
    std::fill(o, o + n, kBf16One);
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    o[i] = FloatToBf16(t.stddev * rng::Normal(t.key, static_cast<uint64_t>(e0 + i)));
  }
  PatchChunk(t, e0, e0 + n, o);
}

}  // namespace dms
