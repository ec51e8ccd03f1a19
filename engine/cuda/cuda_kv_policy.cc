// CudaBackend's part of the training-free KV policies (engine/policies,
// docs/kv-policies.md): recording queries during prefill, scoring cached
// entries, compaction. Mirrors engine/cpu/cpu_kv_policy.cc: the same
// captures, the same scoring functions (kv_scores.h, on the host in double),
// the same refusals; DmsKvCache::Compact's semantics on the device cache.
//
// Where the data lives:
//  * capture (once per request, freed when it stops): snapkv's last queries
//    (RoPE applied) as a ring [layers, 64, Hq, hd] f32 on the device, filled
//    by device-to-device copies of the step's q rows; expected-attention's
//    running sums of the pre-RoPE queries, sum [Hq, hd] and outer
//    [Hq, hd, hd] per layer in double on the device (cuda::LaunchQueryStats).
//    The pre-RoPE queries are not kept by the QKV epilogue (the single-neuron
//    variant zeroes an element after RoPE, so RoPE cannot be undone), so the
//    hook replays the epilogue on the captured rows with an identity rotation
//    (cos 1, sin 0: exact), which gives them bit for bit.
//  * scoring: the layer's K (and V, positions) are gathered on the device,
//    copied to pinned host memory and scored by the CPU backend's functions.
//  * compaction: on the device (cuda::LaunchKvCompactLayer), then the host
//    mirror's lengths and blocks (CudaKvCache::CommitCompaction).
#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <thread>

#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/cuda_status.h"
#include "engine/cuda/cuda_workspace.h"
#include "engine/policies/kv_head_scoring.h"
#include "kernels/kv_compact.h"
#include "kernels/qkv_epilogue.h"

namespace dms {
namespace {

// The epilogue replay recomputes pre-RoPE queries for this many rows at a
// time (the size of its scratch).
constexpr int kCaptureRows = 256;

size_t Align(size_t bytes) { return (bytes + 255) / 256 * 256; }

// Offsets into capture_scratch_: the replay's outputs (only q is used; k, v
// and decisions must go somewhere) and the identity RoPE table.
struct CaptureScratch {
  size_t q = 0, k = 0, v = 0, decisions = 0, cos = 0, sin = 0, positions = 0, bytes = 0;
  explicit CaptureScratch(const ModelConfig& cfg) {
    const size_t hd = cfg.head_dim, hq = cfg.num_q_heads, hkv = cfg.num_kv_heads;
    auto take = [this](size_t n) {
      const size_t at = bytes;
      bytes += Align(n);
      return at;
    };
    q = take(kCaptureRows * hq * hd * 4);   // [R, Hq, hd] f32
    k = take(kCaptureRows * hkv * hd * 4);  // [R, Hkv, hd] (f32 covers both cache dtypes)
    v = take(kCaptureRows * hkv * hd * 4);
    decisions = take(kCaptureRows * hkv);
    cos = take(hd / 2 * 4);                 // [1, hd / 2]: position 0 of a table of ones
    sin = take(hd / 2 * 4);                 // zeros
    positions = take(kCaptureRows * 4);     // [R] zeros
  }
};

// Doubles of one layer's query statistics: sum [Hq, hd], outer [Hq, hd, hd].
size_t StatsPerLayer(const ModelConfig& cfg) {
  const size_t qdim = static_cast<size_t>(cfg.num_q_heads) * cfg.head_dim;
  return qdim + qdim * cfg.head_dim;
}

// fn(i) for i in [0, n) on up to hardware_concurrency threads (scoring is
// per KV head and independent).
void ParallelFor(int n, const std::function<void(int)>& fn) {
  const int threads = std::min<int>(n, std::max(1u, std::thread::hardware_concurrency()));
  if (threads <= 1) {
    for (int i = 0; i < n; ++i) fn(i);
    return;
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int i = t; i < n; i += threads) fn(i);
    });
  }
  for (std::thread& th : pool) th.join();
}

}  // namespace

Status CudaBackend::SetKvCapture(SeqId seq, const KvCaptureSpec& spec) {
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
  const size_t L = cfg.num_layers, qdim = static_cast<size_t>(cfg.num_q_heads) * cfg.head_dim;
  KvCapture c;
  c.spec = spec;
  if (spec.last_queries > 0) {
    DMS_RETURN_IF_ERROR(
        c.ring.Allocate(L * spec.last_queries * qdim * sizeof(float), "KV policy query capture"));
    c.ring_pos.assign(spec.last_queries, -1);
  }
  if (spec.stats_from >= 0) {
    const size_t bytes = L * StatsPerLayer(cfg) * sizeof(double);
    DMS_RETURN_IF_ERROR(c.stats.Allocate(bytes, "KV policy query statistics"));
    DMS_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(c.stats.get(), 0, bytes, stream_), "query statistics init");
    if (!capture_scratch_.get()) {
      const CaptureScratch layout(cfg);
      DMS_RETURN_IF_ERROR(capture_scratch_.Allocate(layout.bytes, "KV policy capture scratch"));
      char* base = static_cast<char*>(capture_scratch_.get());
      const std::vector<float> ones(cfg.head_dim / 2, 1.0f);
      DMS_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(base, 0, layout.bytes, stream_), "capture scratch init");
      DMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(base + layout.cos, ones.data(), ones.size() * sizeof(float),
                                               cudaMemcpyHostToDevice, stream_),
                               "capture scratch init");
      // `ones` is pageable and goes out of scope.
      DMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_), "capture scratch init");
    }
  }
  captures_[seq] = std::move(c);  // a capture set again starts over
  return OkStatus();
}

bool CudaBackend::CapturesAny(std::span<const ForwardChunk> batch) const {
  if (captures_.empty()) return false;
  for (const ForwardChunk& c : batch) {
    if (captures_.count(c.seq)) return true;
  }
  return false;
}

Status CudaBackend::CaptureQueries(int layer, const cuda::QkvEpilogueParams& e, int num_chunks) {
  const ModelConfig& cfg = config();
  const int hq = cfg.num_q_heads, hkv = cfg.num_kv_heads, hd = cfg.head_dim;
  const size_t qdim = static_cast<size_t>(hq) * hd;
  const cuda::StepChunk* chunks = meta_.chunks();  // host copy of this step's table
  for (int ci = 0; ci < num_chunks; ++ci) {
    const cuda::StepChunk& c = chunks[ci];
    auto it = captures_.find(c.seq);
    if (it == captures_.end()) continue;
    KvCapture& cap = it->second;
    if (cap.spec.last_queries > 0) {
      // The chunk's last `ring` queries into slots p % ring: at most two runs.
      const int ring = cap.spec.last_queries;
      float* layer_ring = static_cast<float*>(cap.ring.get()) + static_cast<size_t>(layer) * ring * qdim;
      for (int i = std::max(0, c.n - ring); i < c.n;) {
        const int p = c.start_pos + i, slot = p % ring;
        const int run = std::min(c.n - i, ring - slot);
        DMS_CUDA_RETURN_IF_ERROR(
            cudaMemcpyAsync(layer_ring + slot * qdim, ws_->q + static_cast<size_t>(c.row_base + i) * qdim,
                            run * qdim * sizeof(float), cudaMemcpyDeviceToDevice, stream_),
            "KV policy query capture");
        if (layer == 0) {
          for (int j = 0; j < run; ++j) cap.ring_pos[slot + j] = p + j;
        }
        i += run;
      }
    }
    if (cap.spec.stats_from >= 0) {
      const CaptureScratch layout(cfg);
      char* base = static_cast<char*>(capture_scratch_.get());
      double* sum = static_cast<double*>(cap.stats.get()) + layer * StatsPerLayer(cfg);
      double* outer = sum + qdim;
      const int first = std::clamp(cap.spec.stats_from - c.start_pos, 0, c.n);
      for (int i = first; i < c.n; i += kCaptureRows) {
        const int rows = std::min(kCaptureRows, c.n - i);
        const int64_t r = c.row_base + i;
        // The epilogue again on these rows, rotating by the identity: its
        // q output is then the pre-RoPE query (bias, q_norm, neuron zeroed).
        cuda::QkvEpilogueParams p = e;
        p.qkv = e.qkv + r * static_cast<int64_t>(hq + 2 * hkv) * hd;
        if (p.alpha_logits) p.alpha_logits = e.alpha_logits + r * hkv;
        p.rope_cos = reinterpret_cast<const float*>(base + layout.cos);
        p.rope_sin = reinterpret_cast<const float*>(base + layout.sin);
        p.positions = reinterpret_cast<const int32_t*>(base + layout.positions);
        p.num_tokens = rows;
        p.q_out = reinterpret_cast<float*>(base + layout.q);
        p.k_out = base + layout.k;
        p.v_out = base + layout.v;
        p.decisions = reinterpret_cast<uint8_t*>(base + layout.decisions);
        p.decision_logits = nullptr;
        DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchQkvEpilogue(p, stream_), "KV policy pre-RoPE queries");
        DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchQueryStats(p.q_out, rows, hq, hd, sum, outer, stream_),
                                 "KV policy query statistics");
      }
      if (layer == 0) cap.count += c.n - first;
    }
  }
  return OkStatus();
}

Status CudaBackend::EnsurePolicyScratch(size_t device_bytes, size_t host_bytes) {
  if (policy_scratch_.size() < device_bytes) {
    DMS_RETURN_IF_ERROR(policy_scratch_.Allocate(Align(device_bytes), "KV policy scratch"));
  }
  if (policy_host_.size() < host_bytes) {
    DMS_RETURN_IF_ERROR(policy_host_.Allocate(Align(host_bytes), "KV policy scratch (host)"));
  }
  return OkStatus();
}

Status CudaBackend::ScoreKvLayer(SeqId seq, int layer, const KvPolicySpec& spec,
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
  const KvCapture* capture = nullptr;
  if (auto it = captures_.find(seq); it != captures_.end()) capture = &it->second;
  const KvCaptureSpec needed = KvCaptureFor(spec.kind, spec.params);
  if (needed.any() && (!capture || capture->spec.last_queries < needed.last_queries ||
                       (needed.stats_from >= 0 && capture->spec.stats_from != needed.stats_from))) {
    return FailedPreconditionError(std::string("KV policy '") + KvPolicyName(spec.kind) +
                                   "': the prompt's queries were not captured (SetKvCapture before prefill)");
  }

  // Download: positions [Hkv, max_len] i32, K and V [Hkv, max_len, hd] f32,
  // snapkv's ring of this layer [last_queries, Hq, hd] f32, expected
  // attention's statistics of this layer (doubles).
  std::vector<int> length(hkv);
  int max_len = 0;
  for (int h = 0; h < hkv; ++h) {
    length[h] = cache_->HeadLength(seq, layer, h);
    max_len = std::max(max_len, length[h]);
  }
  const bool snapkv = spec.kind == KvPolicyKind::kSnapKv;
  const bool expected = spec.kind == KvPolicyKind::kExpectedAttention;
  const bool need_k = spec.kind != KvPolicyKind::kStreaming;
  const size_t qdim = static_cast<size_t>(hq) * hd, rows = static_cast<size_t>(hkv) * max_len;
  const size_t pos_bytes = Align(rows * 4), kv_bytes = Align(rows * hd * 4);
  const size_t ring_bytes = snapkv ? Align(capture->ring_pos.size() * qdim * 4) : 0;
  const size_t stats_bytes = expected ? Align(StatsPerLayer(cfg) * sizeof(double)) : 0;
  const size_t o_pos = 0, o_k = pos_bytes, o_v = o_k + (need_k ? kv_bytes : 0);
  const size_t o_ring = o_v + (expected ? kv_bytes : 0), o_stats = o_ring + ring_bytes;
  DMS_RETURN_IF_ERROR(EnsurePolicyScratch(o_ring, o_stats + stats_bytes));
  char* dev = static_cast<char*>(policy_scratch_.get());
  char* host = static_cast<char*>(policy_host_.get());
  DMS_CUDA_RETURN_IF_ERROR(
      cuda::LaunchKvGatherLayer(cache_->view(), seq, layer, max_len,
                                need_k ? reinterpret_cast<float*>(dev + o_k) : nullptr,
                                expected ? reinterpret_cast<float*>(dev + o_v) : nullptr,
                                reinterpret_cast<int32_t*>(dev + o_pos), stream_),
      "KV policy: reading the cache");
  if (o_ring > 0) {
    DMS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host, dev, o_ring, cudaMemcpyDeviceToHost, stream_),
                             "KV policy: copying the cache");
  }
  if (snapkv) {
    const size_t layer_ring = capture->ring_pos.size() * qdim;
    DMS_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(host + o_ring, static_cast<const float*>(capture->ring.get()) + layer * layer_ring,
                        layer_ring * sizeof(float), cudaMemcpyDeviceToHost, stream_),
        "KV policy: copying the queries");
  }
  if (expected) {
    DMS_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(host + o_stats,
                        static_cast<const double*>(capture->stats.get()) + layer * StatsPerLayer(cfg),
                        StatsPerLayer(cfg) * sizeof(double), cudaMemcpyDeviceToHost, stream_),
        "KV policy: copying the query statistics");
  }
  DMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_), "KV policy scoring");
  const int32_t* h_pos = reinterpret_cast<const int32_t*>(host + o_pos);
  const float* h_k = reinterpret_cast<const float*>(host + o_k);
  const float* h_v = reinterpret_cast<const float*>(host + o_v);

  // The window queries of snapkv, oldest first: [m, Hq, hd] (as the CPU backend).
  std::vector<float> window_q;
  std::vector<int32_t> window_pos;
  if (snapkv) {
    const std::vector<int32_t>& ring_pos = capture->ring_pos;
    const float* ring = reinterpret_cast<const float*>(host + o_ring);
    SnapKvWindowFromRing(std::span<const float>(ring, ring_pos.size() * qdim), ring_pos, qdim, spec.num_tokens,
                         spec.params.window, &window_q, &window_pos);
  }
  std::vector<double> inv_freq(hd / 2);
  for (int i = 0; i < hd / 2; ++i) inv_freq[i] = 1.0 / std::pow(cfg.rope_theta, (2.0 * i) / hd);
  const double* stats = reinterpret_cast<const double*>(host + o_stats);

  out->assign(hkv, KvHeadScores());
  ParallelFor(hkv, [&](int h) {
    const int n = length[h];
    const size_t row0 = static_cast<size_t>(h) * max_len;
    KvHeadScores& head = (*out)[h];
    head.positions.assign(h_pos + row0, h_pos + row0 + n);
    const std::span<const float> keys(h_k + row0 * hd, need_k ? static_cast<size_t>(n) * hd : 0);
    KvHeadScoreInputs in;
    in.head = h;
    in.head_dim = hd;
    in.group = g;
    in.num_q_heads = hq;
    in.keys = keys;
    in.positions = head.positions;
    in.window_queries = window_q;
    in.window_positions = window_pos;
    if (expected) {
      const size_t gd = static_cast<size_t>(g) * hd;
      in.values = std::span<const float>(h_v + row0 * hd, static_cast<size_t>(n) * hd);
      in.query_count = capture->count;
      in.query_sum = std::span<const double>(stats + h * gd, gd);
      in.query_outer = std::span<const double>(stats + qdim + h * gd * hd, gd * hd);
      in.inv_freq = inv_freq;
    }
    head.scores = ScoreKvHead(spec, in);
  });
  return OkStatus();
}

Status CudaBackend::CompactKv(SeqId seq, int layer, std::span<const std::vector<int32_t>> kept_slots) {
  const ModelConfig& cfg = config();
  const int hkv = cfg.num_kv_heads;
  // The CPU backend's checks, in its order; then DmsKvCache::Compact's per
  // head (the refusal of an evicting cache). Nothing changes on a refusal.
  if (!cache_->HasSequence(seq)) return InvalidArgumentError("unknown sequence id " + std::to_string(seq));
  if (layer < 0 || layer >= cfg.num_layers) {
    return InvalidArgumentError("KV compaction: no layer " + std::to_string(layer));
  }
  if (static_cast<int>(kept_slots.size()) != hkv) {
    return InvalidArgumentError("KV compaction: " + std::to_string(kept_slots.size()) +
                                " kept-slot lists for " + std::to_string(hkv) + " KV heads");
  }
  for (int h = 0; h < hkv; ++h) {
    const int length = cache_->HeadLength(seq, layer, h);
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
  for (int h = 0; h < hkv; ++h) DMS_RETURN_IF_ERROR(cache_->CheckCompaction(seq, layer, h, kept_slots[h]));

  // Upload the lists: kept [total] then offsets [Hkv + 1], then the kernel's scratch.
  int total = 0, max_kept = 0;
  for (const std::vector<int32_t>& kept : kept_slots) {
    total += static_cast<int>(kept.size());
    max_kept = std::max(max_kept, static_cast<int>(kept.size()));
  }
  const size_t list_bytes = Align((static_cast<size_t>(total) + hkv + 1) * sizeof(int32_t));
  const cuda::KvDeviceView view = cache_->view();
  DMS_RETURN_IF_ERROR(
      EnsurePolicyScratch(list_bytes + cuda::KvCompactScratchBytes(view, max_kept), list_bytes));
  int32_t* h_list = static_cast<int32_t*>(policy_host_.get());
  int32_t* h_offsets = h_list + total;
  h_offsets[0] = 0;
  for (int h = 0; h < hkv; ++h) {
    std::copy(kept_slots[h].begin(), kept_slots[h].end(), h_list + h_offsets[h]);
    h_offsets[h + 1] = h_offsets[h] + static_cast<int32_t>(kept_slots[h].size());
  }
  char* dev = static_cast<char*>(policy_scratch_.get());
  const int32_t* d_list = reinterpret_cast<const int32_t*>(dev);
  DMS_CUDA_RETURN_IF_ERROR(
      cudaMemcpyAsync(dev, h_list, (static_cast<size_t>(total) + hkv + 1) * sizeof(int32_t),
                      cudaMemcpyHostToDevice, stream_),
      "KV compaction: copying the kept slots");
  DMS_CUDA_RETURN_IF_ERROR(cuda::LaunchKvCompactLayer(view, seq, layer, d_list, d_list + total, max_kept,
                                                      dev + list_bytes, stream_),
                           "KV compaction");
  // The pinned lists are reused by the next call, and errors surface here.
  DMS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_), "KV compaction");
  for (int h = 0; h < hkv; ++h) {
    cache_->CommitCompaction(seq, layer, h, static_cast<int>(kept_slots[h].size()));
  }
  return OkStatus();
}

}  // namespace dms
