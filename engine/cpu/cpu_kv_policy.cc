// CpuBackend's part of the training-free KV policies (engine/policies):
// recording queries during prefill, scoring cached entries, compaction.
#include <algorithm>
#include <string>

#include "engine/cpu/cpu_backend.h"
#include "engine/cpu/query_capture.h"
#include "engine/policies/kv_head_scoring.h"

namespace dms {

Status CpuBackend::SetKvCapture(SeqId seq, const KvCaptureSpec& spec) {
  if (!cache_->HasSequence(seq)) return InvalidArgumentError("unknown sequence id " + std::to_string(seq));
  if (!spec.any()) {
    captures_.erase(seq);
    return OkStatus();
  }
  if (window_ != kDenseWindow) {
    return FailedPreconditionError(
        "KV policies need a dense cache; this backend evicts by the checkpoint's DMS decisions");
  }
  const ModelConfig& cfg = config();
  const size_t qdim = static_cast<size_t>(cfg.num_q_heads) * cfg.head_dim;
  auto c = std::make_unique<CpuQueryCapture>();
  c->spec = spec;
  c->layers.resize(cfg.num_layers);
  for (CpuQueryCapture::Layer& l : c->layers) {
    if (spec.last_queries > 0) {
      l.ring.assign(spec.last_queries * qdim, 0.0f);
      l.ring_pos.assign(spec.last_queries, -1);
    }
    if (spec.stats_from >= 0) {
      l.sum.assign(qdim, 0.0);
      l.outer.assign(qdim * cfg.head_dim, 0.0);
    }
  }
  captures_[seq] = std::move(c);
  return OkStatus();
}

void CpuBackend::CaptureQueryStats(int layer, std::span<const ForwardChunk> batch) {
  const int hq = config().num_q_heads, hd = config().head_dim;
  int64_t base = 0;
  for (const ForwardChunk& chunk : batch) {
    const int64_t n = static_cast<int64_t>(chunk.tokens.size());
    auto it = captures_.find(chunk.seq);
    if (it != captures_.end() && it->second->spec.stats_from >= 0) {
      const int stats_from = it->second->spec.stats_from;
      CpuQueryCapture::Layer& l = it->second->layers[layer];
      // Heads are independent: one task each.
      pool_.ParallelFor(hq, [&](int64_t h0, int64_t h1) {
        for (int64_t h = h0; h < h1; ++h) {
          double* sum = &l.sum[h * hd];
          double* outer = &l.outer[h * hd * hd];
          for (int64_t r = base; r < base + n; ++r) {
            if (s_.positions[r] < stats_from) continue;
            const float* q = &s_.q[(r * hq + h) * hd];
            for (int a = 0; a < hd; ++a) {
              sum[a] += q[a];
              for (int b = 0; b < hd; ++b) outer[a * hd + b] += static_cast<double>(q[a]) * q[b];
            }
          }
        }
      });
      for (int64_t r = base; r < base + n; ++r) l.count += s_.positions[r] >= stats_from;
    }
    base += n;
  }
}

void CpuBackend::CaptureLastQueries(int layer, std::span<const ForwardChunk> batch) {
  const size_t qdim = static_cast<size_t>(config().num_q_heads) * config().head_dim;
  int64_t base = 0;
  for (const ForwardChunk& chunk : batch) {
    const int64_t n = static_cast<int64_t>(chunk.tokens.size());
    auto it = captures_.find(chunk.seq);
    if (it != captures_.end() && it->second->spec.last_queries > 0) {
      const int ring = it->second->spec.last_queries;
      CpuQueryCapture::Layer& l = it->second->layers[layer];
      for (int64_t r = std::max(base, base + n - ring); r < base + n; ++r) {
        const int32_t p = s_.positions[r];
        std::copy_n(&s_.q[r * qdim], qdim, &l.ring[(p % ring) * qdim]);
        l.ring_pos[p % ring] = p;
      }
    }
    base += n;
  }
}

Status CpuBackend::ScoreKvLayer(SeqId seq, int layer, const KvPolicySpec& spec,
                                std::vector<KvHeadScores>* out) {
  const ModelConfig& cfg = config();
  if (!cache_->HasSequence(seq)) return InvalidArgumentError("unknown sequence id " + std::to_string(seq));
  if (layer < 0 || layer >= cfg.num_layers) {
    return InvalidArgumentError("KV policy: no layer " + std::to_string(layer));
  }
  if (!IsTrainingFree(spec.kind)) {
    return InvalidArgumentError(std::string("KV policy '") + KvPolicyName(spec.kind) + "' has no scores");
  }
  const int hkv = cfg.num_kv_heads, hq = cfg.num_q_heads, hd = cfg.head_dim, g = cfg.group_size();
  const CpuQueryCapture* capture = nullptr;
  if (auto it = captures_.find(seq); it != captures_.end()) capture = it->second.get();
  const KvCaptureSpec needed = KvCaptureFor(spec.kind, spec.params);
  if (needed.any() && (!capture || capture->spec.last_queries < needed.last_queries ||
                       (needed.stats_from >= 0 && capture->spec.stats_from != needed.stats_from))) {
    return FailedPreconditionError(std::string("KV policy '") + KvPolicyName(spec.kind) +
                                   "': the prompt's queries were not captured (SetKvCapture before prefill)");
  }

  // The window queries of snapkv, oldest first: [m, Hq, hd].
  std::vector<float> window_q;
  std::vector<int32_t> window_pos;
  if (spec.kind == KvPolicyKind::kSnapKv) {
    const CpuQueryCapture::Layer& l = capture->layers[layer];
    SnapKvWindowFromRing(l.ring, l.ring_pos, static_cast<size_t>(hq) * hd, spec.num_tokens, spec.params.window,
                         &window_q, &window_pos);
  }

  out->assign(hkv, KvHeadScores());
  pool_.ParallelFor(hkv, [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h) {
      const HeadCacheView view = cache_->View(seq, layer, static_cast<int>(h));
      const int n = view.length();
      KvHeadScores& head = (*out)[h];
      head.positions.resize(n);
      std::vector<float> keys(static_cast<size_t>(n) * hd), values;
      for (int s = 0; s < n; ++s) {
        head.positions[s] = view.pos(s);
        std::copy_n(view.k(s), hd, &keys[static_cast<size_t>(s) * hd]);
      }
      if (spec.kind == KvPolicyKind::kExpectedAttention) {
        values.resize(keys.size());
        for (int s = 0; s < n; ++s) std::copy_n(view.v(s), hd, &values[static_cast<size_t>(s) * hd]);
      }
      KvHeadScoreInputs in;
      in.head = static_cast<int>(h);
      in.head_dim = hd;
      in.group = g;
      in.num_q_heads = hq;
      in.keys = keys;
      in.values = values;
      in.positions = head.positions;
      in.window_queries = window_q;
      in.window_positions = window_pos;
      if (spec.kind == KvPolicyKind::kExpectedAttention) {
        const CpuQueryCapture::Layer& l = capture->layers[layer];
        in.query_count = l.count;
        in.query_sum = std::span<const double>(l.sum).subspan(h * g * hd, static_cast<size_t>(g) * hd);
        in.query_outer =
            std::span<const double>(l.outer).subspan(h * g * hd * hd, static_cast<size_t>(g) * hd * hd);
        in.inv_freq = inv_freq_;
      }
      head.scores = ScoreKvHead(spec, in);
    }
  });
  return OkStatus();
}

Status CpuBackend::CompactKv(SeqId seq, int layer, std::span<const std::vector<int32_t>> kept_slots) {
  const ModelConfig& cfg = config();
  if (!cache_->HasSequence(seq)) return InvalidArgumentError("unknown sequence id " + std::to_string(seq));
  if (layer < 0 || layer >= cfg.num_layers) {
    return InvalidArgumentError("KV compaction: no layer " + std::to_string(layer));
  }
  if (static_cast<int>(kept_slots.size()) != cfg.num_kv_heads) {
    return InvalidArgumentError("KV compaction: " + std::to_string(kept_slots.size()) +
                                " kept-slot lists for " + std::to_string(cfg.num_kv_heads) + " KV heads");
  }
  // Validate every head first, so a bad list changes nothing.
  for (int h = 0; h < cfg.num_kv_heads; ++h) {
    const int length = cache_->View(seq, layer, h).length();
    const std::vector<int32_t>& kept = kept_slots[h];
    for (size_t i = 0; i < kept.size(); ++i) {
      if (kept[i] < 0 || kept[i] >= length || (i > 0 && kept[i] <= kept[i - 1])) {
        return InvalidArgumentError("KV compaction of layer " + std::to_string(layer) + " head " +
                                    std::to_string(h) + ": kept slots must ascend within [0, " +
                                    std::to_string(length) + "), got " + std::to_string(kept[i]) +
                                    " at index " + std::to_string(i));
      }
    }
  }
  for (int h = 0; h < cfg.num_kv_heads; ++h) DMS_RETURN_IF_ERROR(cache_->Compact(seq, layer, h, kept_slots[h]));
  return OkStatus();
}

}  // namespace dms
