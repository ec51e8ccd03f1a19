#include "engine/cpu/cpu_backend.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "engine/core/forward_batch.h"
#include "engine/cpu/cpu_attention.h"
#include "engine/cpu/cpu_matmul.h"
#include "engine/cpu/cpu_ops.h"

namespace dms {

struct CpuBackend::LayerParams {
  std::vector<float> input_norm, post_norm, q_norm, k_norm;  // [D], [D], [hd], [hd]
  std::vector<float> q_bias, k_bias, v_bias, o_bias;         // empty unless attention_bias
  std::vector<float> alpha_norm;                             // [D], projection variant only
};

namespace {
std::vector<float> OptionalToFloat(const TensorView* t) {
  return t ? TensorToFloat(*t) : std::vector<float>();
}
const float* DataOrNull(const std::vector<float>& v) { return v.empty() ? nullptr : v.data(); }
}  // namespace

CpuBackend::CpuBackend(std::shared_ptr<const Checkpoint> checkpoint,
                       const CpuBackendOptions& options)
    : checkpoint_(std::move(checkpoint)), options_(options), pool_(options.num_threads) {}

CpuBackend::~CpuBackend() = default;

StatusOr<std::unique_ptr<CpuBackend>> CpuBackend::Create(
    std::shared_ptr<const Checkpoint> checkpoint, const CpuBackendOptions& options) {
  if (!checkpoint) return InvalidArgumentError("CpuBackend: no checkpoint");
  if (options.kv_block_size <= 0) return InvalidArgumentError("kv block size must be positive");
  std::unique_ptr<CpuBackend> b(new CpuBackend(std::move(checkpoint), options));
  const ModelConfig& cfg = b->config();
  const ModelWeights& w = b->checkpoint_->weights();

  b->window_ = (cfg.dms.enabled && !options.force_dense) ? cfg.dms.window_size : kDenseWindow;
  b->inv_freq_ = RopeInvFreq(cfg.rope_theta, cfg.head_dim);
  b->final_norm_ = TensorToFloat(*w.final_norm);
  b->layers_.resize(cfg.num_layers);
  for (int l = 0; l < cfg.num_layers; ++l) {
    const LayerWeights& lw = w.layers[l];
    LayerParams& p = b->layers_[l];
    p.input_norm = TensorToFloat(*lw.input_layernorm);
    p.post_norm = TensorToFloat(*lw.post_attention_layernorm);
    p.q_norm = TensorToFloat(*lw.q_norm);
    p.k_norm = TensorToFloat(*lw.k_norm);
    p.q_bias = OptionalToFloat(lw.q_bias);
    p.k_bias = OptionalToFloat(lw.k_bias);
    p.v_bias = OptionalToFloat(lw.v_bias);
    p.o_bias = OptionalToFloat(lw.o_bias);
    p.alpha_norm = OptionalToFloat(lw.dms_proj_alpha_norm);
  }

  KvCacheConfig kv;
  kv.num_layers = cfg.num_layers;
  kv.num_kv_heads = cfg.num_kv_heads;
  kv.head_dim = cfg.head_dim;
  kv.window = b->window_;
  kv.block_size = options.kv_block_size;
  const int64_t block_bytes = 2LL * options.kv_block_size * cfg.head_dim * sizeof(float);
  kv.num_blocks = options.kv_num_blocks > 0
                      ? options.kv_num_blocks
                      : static_cast<int>(std::max<int64_t>(1, options.kv_cache_bytes / block_bytes));
  b->cache_ = std::make_unique<DmsKvCache>(kv);
  if (!b->cache_->ok()) {
    return ResourceExhaustedError("KV pool of " + std::to_string(kv.num_blocks) + " blocks (" +
                                  std::to_string(kv.num_blocks * block_bytes) +
                                  " bytes): cannot map that much host memory");
  }
  return b;
}

BackendInfo CpuBackend::info() const {
  BackendInfo i;
  i.name = "cpu";
  i.device = std::to_string(pool_.num_threads()) + " threads";
  i.kv_block_size = cache_->config().block_size;
  i.kv_num_blocks = cache_->config().num_blocks;
  i.kv_bytes_per_block = 2LL * i.kv_block_size * config().head_dim * sizeof(float);
  for (const auto& f : checkpoint_->files()) {
    for (const auto& [name, t] : f->tensors()) i.weights_bytes += static_cast<int64_t>(t.nbytes);
  }
  i.kv_pool_bytes = static_cast<int64_t>(i.kv_num_blocks) * i.kv_bytes_per_block;
  i.dms_eviction = window_ != kDenseWindow;
  i.kv_policies = true;
  i.sampling = true;
  return i;
}

StatusOr<SeqId> CpuBackend::CreateSequence() { return cache_->AddSequence(); }

void CpuBackend::ReleaseSequence(SeqId seq) {
  captures_.erase(seq);
  histories_.erase(seq);
  cache_->FreeSequence(seq);
}

Status CpuBackend::SetTokenHistory(SeqId seq, std::span<const int32_t> prompt,
                                   std::span<const int32_t> output) {
  if (!cache_->HasSequence(seq))
    return InvalidArgumentError("unknown sequence id " + std::to_string(seq));
  TokenHistory h(config().vocab_size);
  h.AddPrompt(prompt);
  for (int32_t id : output) {
    if (id < 0 || id >= config().vocab_size)
      return InvalidArgumentError("output token id outside the vocabulary");
    h.AddOutput(id);
  }
  histories_.insert_or_assign(seq, std::move(h));
  return OkStatus();
}

int CpuBackend::KvBlocksNeeded(SeqId seq, int num_new_tokens) const {
  return cache_->BlocksNeeded(seq, num_new_tokens);
}

SequenceKvStats CpuBackend::SequenceStats(SeqId seq) const { return cache_->SequenceStats(seq); }

KvPoolStats CpuBackend::PoolStats() const { return cache_->PoolStats(); }

Status CpuBackend::Validate(std::span<const ForwardChunk> batch) const {
  return ValidateForwardBatch(
      config(), batch,
      [this](SeqId seq) -> int64_t { return cache_->HasSequence(seq) ? cache_->LogicalTokens(seq) : -1; },
      nullptr);
}

Status CpuBackend::Forward(std::span<const ForwardChunk> batch, ForwardResult* out) {
  DMS_RETURN_IF_ERROR(Validate(batch));
  // Reserve every chunk's worst case first, so a full pool fails the step
  // before anything is applied.
  int needed = 0;
  for (const ForwardChunk& c : batch) needed += cache_->BlocksNeeded(c.seq, c.tokens.size());
  if (needed > cache_->num_free_blocks()) {
    return ResourceExhaustedError("KV cache full: the step needs " + std::to_string(needed) +
                                  " blocks, " + std::to_string(cache_->num_free_blocks()) +
                                  " of " + std::to_string(cache_->config().num_blocks) +
                                  " are free");
  }
  for (const ForwardChunk& c : batch) DMS_RETURN_IF_ERROR(cache_->Reserve(c.seq, c.tokens.size()));

  const ModelConfig& cfg = config();
  const int64_t D = cfg.hidden_size;
  int64_t total = 0;
  for (const ForwardChunk& c : batch) total += c.tokens.size();
  s_.positions.resize(total);
  s_.x.resize(total * D);
  const TensorView& embed = *checkpoint_->weights().embed_tokens;
  {
    int64_t r = 0;
    for (const ForwardChunk& c : batch) {
      const int32_t start = cache_->LogicalTokens(c.seq);
      for (size_t i = 0; i < c.tokens.size(); ++i, ++r) {
        s_.positions[r] = start + static_cast<int32_t>(i);
        ConvertToFloat(embed, static_cast<int64_t>(c.tokens[i]) * D, D, &s_.x[r * D]);
      }
    }
  }
  for (int l = 0; l < cfg.num_layers; ++l) RunLayer(l, batch);
  for (const ForwardChunk& c : batch) cache_->CommitStep(c.seq, c.tokens.size());

  // Final norm and LM head only on the rows whose logits were asked for.
  int64_t rows = 0;
  for (const ForwardChunk& c : batch) rows += c.num_logits;
  s_.h.resize(std::max<int64_t>(rows, 1) * D);
  {
    int64_t r = 0, base = 0;
    for (const ForwardChunk& c : batch) {
      const int64_t n = c.tokens.size();
      for (int64_t i = n - c.num_logits; i < n; ++i, ++r) {
        std::memcpy(&s_.h[r * D], &s_.x[(base + i) * D], sizeof(float) * D);
      }
      base += n;
    }
  }
  RmsNormRows(pool_, s_.h.data(), rows, D, final_norm_.data(), cfg.rms_norm_eps, s_.h.data());
  s_.logits.resize(rows * cfg.vocab_size);
  if (rows > 0) {
    MatMul(pool_, s_.h.data(), rows, D, *checkpoint_->weights().lm_head, nullptr, s_.logits.data());
  }
  // A sequence sampled without SetTokenHistory starts with an empty history.
  auto history = [&](SeqId seq) {
    return &histories_.try_emplace(seq, cfg.vocab_size).first->second;
  };
  FinishForwardResult(batch, cfg.vocab_size, &s_.logits, history, &sample_scratch_, out);
  return OkStatus();
}

void CpuBackend::RunLayer(int layer, std::span<const ForwardChunk> batch) {
  const ModelConfig& cfg = config();
  const LayerWeights& lw = checkpoint_->weights().layers[layer];
  const LayerParams& p = layers_[layer];
  const int64_t N = s_.positions.size();
  const int64_t D = cfg.hidden_size, I = cfg.intermediate_size;
  const int hq = cfg.num_q_heads, hkv = cfg.num_kv_heads, hd = cfg.head_dim, g = cfg.group_size();
  const DmsConfig& dms = cfg.dms;

  // h = RMSNorm(x) * input_layernorm;  q: [N, Hq, hd], k/v: [N, Hkv, hd]
  s_.h.resize(N * D);
  RmsNormRows(pool_, s_.x.data(), N, D, p.input_norm.data(), cfg.rms_norm_eps, s_.h.data());
  s_.q.resize(N * hq * hd);
  s_.k.resize(N * hkv * hd);
  s_.v.resize(N * hkv * hd);
  MatMul(pool_, s_.h.data(), N, D, *lw.q_proj, DataOrNull(p.q_bias), s_.q.data());
  MatMul(pool_, s_.h.data(), N, D, *lw.k_proj, DataOrNull(p.k_bias), s_.k.data());
  MatMul(pool_, s_.h.data(), N, D, *lw.v_proj, DataOrNull(p.v_bias), s_.v.data());

  // DMS decisions d: [N, Hkv] (1 = the token's predecessor is to be evicted).
  s_.decisions.assign(N * hkv, 0);
  if (dms.enabled && dms.separate_alpha) {
    // Projection variant: from the layer input x (before input_layernorm).
    s_.alpha.resize(N * D);
    RmsNormRows(pool_, s_.x.data(), N, D, p.alpha_norm.data(), cfg.rms_norm_eps, s_.alpha.data());
    s_.tmp.resize(N * hkv);
    MatMul(pool_, s_.alpha.data(), N, D, *lw.dms_proj_alpha, nullptr, s_.tmp.data());
    for (int64_t i = 0; i < N * hkv; ++i) {
      s_.decisions[i] = s_.tmp[i] * dms.alpha_scale - dms.initial_alpha_offset > 0.0f;
    }
  }
  RmsNormHeads(pool_, s_.q.data(), N, hq, hd, p.q_norm.data(), cfg.rms_norm_eps);
  RmsNormHeads(pool_, s_.k.data(), N, hkv, hd, p.k_norm.data(), cfg.rms_norm_eps);
  const bool neuron = dms.enabled && !dms.separate_alpha;
  if (neuron) {
    // Single-neuron variant: the last element of the group's first query head
    // is the decision logit; it never takes part in attention.
    for (int64_t t = 0; t < N; ++t) {
      for (int h = 0; h < hkv; ++h) {
        float& e = s_.q[(t * hq + h * g) * hd + hd - 1];
        s_.decisions[t * hkv + h] = e * dms.alpha_scale - dms.initial_alpha_offset > 0.0f;
        e = 0.0f;
      }
    }
  }
  if (dms.enabled && dms.alpha_per == DmsAlphaPer::kLayer) {
    for (int64_t t = 0; t < N; ++t)
      for (int h = 1; h < hkv; ++h) s_.decisions[t * hkv + h] = s_.decisions[t * hkv];
  }
  if (!dms.enabled || dms.disable_eviction || window_ == kDenseWindow) {
    std::fill(s_.decisions.begin(), s_.decisions.end(), 0);
  }
  if (!captures_.empty()) CaptureQueryStats(layer, batch);
  ApplyRope(pool_, s_.q.data(), N, hq, hd, s_.positions.data(), inv_freq_);
  ApplyRope(pool_, s_.k.data(), N, hkv, hd, s_.positions.data(), inv_freq_);
  if (neuron) {
    for (int64_t t = 0; t < N; ++t)
      for (int h = 0; h < hkv; ++h) s_.q[(t * hq + h * g) * hd + hd - 1] = 0.0f;
  }
  if (!captures_.empty()) CaptureLastQueries(layer, batch);

  // Attention per chunk over its cache (before this step) and its own keys.
  s_.attn.resize(N * hq * hd);
  std::vector<AttentionChunk> chunks(batch.size());
  int64_t base = 0;
  for (size_t c = 0; c < batch.size(); ++c) {
    AttentionChunk& a = chunks[c];
    a.n = static_cast<int>(batch[c].tokens.size());
    a.first_pos = s_.positions[base];
    a.q = &s_.q[base * hq * hd];
    a.k = &s_.k[base * hkv * hd];
    a.v = &s_.v[base * hkv * hd];
    a.decisions = &s_.decisions[base * hkv];
    a.out = &s_.attn[base * hq * hd];
    for (int h = 0; h < hkv; ++h) a.cache.push_back(cache_->View(batch[c].seq, layer, h));
    base += a.n;
  }
  AttentionDims dims{hq, hkv, hd, window_};
  DmsAttention(pool_, dims, chunks);

  // Append the chunk's K/V to the cache in position order (evicting as the
  // window slides). Heads are independent, so they run in parallel.
  pool_.ParallelFor(static_cast<int64_t>(batch.size()) * hkv, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const size_t c = i / hkv;
      const int h = static_cast<int>(i % hkv);
      const AttentionChunk& a = chunks[c];
      for (int t = 0; t < a.n; ++t) {
        const int64_t row = static_cast<int64_t>(t) * hkv + h;
        Status st = cache_->Append(batch[c].seq, layer, h, a.k + row * hd, a.v + row * hd,
                                   a.decisions[row] != 0);
        (void)st;  // Reserve() above guarantees room
      }
    }
  });

  // x += o_proj(attn)
  s_.tmp.resize(N * D);
  MatMul(pool_, s_.attn.data(), N, hq * hd, *lw.o_proj, DataOrNull(p.o_bias), s_.tmp.data());
  AddInPlace(pool_, s_.x.data(), s_.tmp.data(), N * D);

  // x += down(silu(gate(h2)) * up(h2)),  h2 = RMSNorm(x) * post_attention_layernorm
  RmsNormRows(pool_, s_.x.data(), N, D, p.post_norm.data(), cfg.rms_norm_eps, s_.h.data());
  s_.gate.resize(N * I);
  s_.up.resize(N * I);
  MatMul(pool_, s_.h.data(), N, D, *lw.gate_proj, nullptr, s_.gate.data());
  MatMul(pool_, s_.h.data(), N, D, *lw.up_proj, nullptr, s_.up.data());
  SiluMul(pool_, s_.gate.data(), s_.up.data(), N * I);
  MatMul(pool_, s_.gate.data(), N, I, *lw.down_proj, nullptr, s_.tmp.data());
  AddInPlace(pool_, s_.x.data(), s_.tmp.data(), N * D);
}

}  // namespace dms
