// Batched decode and capacity, DMS against a dense cache (bench_batch_decode.h).
//
// Per configuration (DMS eviction, then force_dense) one backend with the
// same KV pool bytes: prefill max(streams) sequences of `context` random
// tokens (one sequence per step, chunks of max_batch_tokens), then for each
// stream count S time `steps` decode steps of the first S sequences (the
// Forward call only: the host argmax between steps is not counted), then
// release them and prefill one `capacity_context` sequence: the streams that
// fit are the pool's blocks over the blocks that sequence holds after its
// prefill (measured footprint; DMS frees slots as tokens leave the window).
#include "tests/gpu/bench_batch_decode.h"

#include <cuda_profiler_api.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <span>
#include <string>

#include "engine/core/sampler.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/model/checkpoint.h"

namespace dms::bench {
namespace {

using Clock = std::chrono::steady_clock;

double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// Bytes of the bf16 weights the backend uploads (embedding, LM head when
// untied, per-layer matrices), to size the KV pool before creating it.
double WeightBytes(const ModelConfig& c) {
  const double D = c.hidden_size, hd = c.head_dim, I = c.intermediate_size;
  const double per_layer = D * (c.num_q_heads + 2.0 * c.num_kv_heads) * hd + c.num_q_heads * hd * D +
                           3.0 * D * I;
  return 2.0 * (c.vocab_size * D * (c.tie_word_embeddings ? 1 : 2) + c.num_layers * per_layer);
}

std::string SamplingName(const BatchDecodeArgs& a) {
  if (a.temperature <= 0) return "greedy";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "T%g top_p %g top_k %d", a.temperature, a.top_p, a.top_k);
  return buf;
}

int64_t Retained(const SequenceKvStats& s) {
  int64_t n = 0;
  for (const auto& layer : s.retained)
    for (int r : layer) n += r;
  return n;
}

// config: "dms" or "dense"; with "-streamed" or "-mma" that decode attention
// kernel instead of the tuning's (same-run A/B).
int RunConfig(const BatchDecodeArgs& a, std::shared_ptr<const Checkpoint> ckpt,
              const std::string& config, int64_t kv_bytes) {
  const bool dense = config.rfind("dense", 0) == 0;
  const char* name = config.c_str();
  CudaBackendOptions o;
  o.tuning = a.tuning;
  if (config.find("-streamed") != std::string::npos) o.tuning.decode_attention = "streamed";
  if (config.find("-mma") != std::string::npos) o.tuning.decode_attention = "mma";
  o.max_batch_tokens = 8192;
  o.max_sequences = *std::max_element(a.streams.begin(), a.streams.end()) + 1;
  o.kv_cache_bytes = kv_bytes;
  o.force_dense = dense;
  o.device_sampling = a.temperature > 0;
  auto made = CudaBackend::Create(ckpt, o);
  if (!made.ok()) {
    std::fprintf(stderr, "batch decode (%s): %s\n", name, made.status().ToString().c_str());
    return 1;
  }
  CudaBackend& b = **made;
  const ModelConfig& cfg = b.config();
  std::mt19937 rng(11);
  std::vector<int32_t> prompt(a.context);
  std::vector<float> logits;
  const int max_streams = o.max_sequences - 1;
  std::vector<SeqId> seqs;
  std::vector<int32_t> next;
  const auto t_prefill = Clock::now();
  for (int i = 0; i < max_streams; ++i) {
    SeqId s = *b.CreateSequence();
    for (int32_t& x : prompt) x = static_cast<int32_t>(rng() % cfg.vocab_size);
    Status st = OkStatus();
    for (int pos = 0; pos < a.context && st.ok(); pos += o.max_batch_tokens) {
      const int n = std::min(o.max_batch_tokens, a.context - pos);
      ForwardChunk c{s, std::span<const int32_t>(prompt.data() + pos, n), pos + n == a.context ? 1 : 0};
      st = b.Forward({&c, 1}, &logits);
    }
    if (!st.ok()) {  // the pool is full: the streams that fit at this context
      b.ReleaseSequence(s);
      break;
    }
    seqs.push_back(s);
    next.push_back(static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
  }
  const KvPoolStats pool = b.PoolStats();
  std::printf("{\"kind\":\"batch_prefill\",\"config\":\"%s\",\"context\":%d,\"streams\":%zu,"
              "\"seconds\":%.1f,\"pool_blocks\":%d,\"blocks_used\":%d,\"kv_pool_GB\":%.2f}\n",
              name, a.context, seqs.size(), Ms(t_prefill, Clock::now()) / 1e3, pool.num_blocks,
              pool.blocks_used, b.memory_plan().kv_cache / 1e9);
  std::fflush(stdout);
  const double kv_token_bytes = 2.0 * cfg.head_dim * 2;  // K and V, bf16 cache (default precision)
  for (int S : a.streams) {
    if (S > static_cast<int>(seqs.size())) {
      std::printf("{\"kind\":\"batch_decode\",\"config\":\"%s\",\"context\":%d,\"streams\":%d,"
                  "\"fits\":false}\n", name, a.context, S);
      continue;
    }
    std::vector<double> ms;
    int64_t retained = 0;
    Status st = OkStatus();
    // Streams as the engine runs them: a greedy row comes back as its summary
    // (argmax, log-sum-exp), a sampled one as its token (backend sampling).
    const bool sampled = a.temperature > 0;
    std::vector<RowSampling> sampling(S);
    for (int i = 0; i < S && sampled; ++i) {
      st = b.SetTokenHistory(seqs[i], {}, {});
      sampling[i].params.temperature = a.temperature;
      sampling[i].params.top_p = a.top_p;
      sampling[i].params.top_k = a.top_k;
    }
    ForwardResult out;
    for (int step = 0; step < a.steps + 2 && st.ok(); ++step) {
      std::vector<ForwardChunk> batch;
      for (int i = 0; i < S; ++i) {
        sampling[i].uniform = CounterUniform(i, step);
        batch.push_back({seqs[i], std::span<const int32_t>(&next[i], 1), 1, false,
                         sampled ? &sampling[i] : nullptr});
      }
      if (a.profile && step == 2) cudaProfilerStart();
      const auto t0 = Clock::now();
      st = b.Forward(batch, &out);
      if (step >= 2) ms.push_back(Ms(t0, Clock::now()));  // two warm-up steps (graph capture)
      for (int i = 0; i < S && st.ok(); ++i)
        next[i] = sampled ? out.sampled[i].id : out.summaries[i].argmax;
    }
    if (a.profile) cudaProfilerStop();
    if (!st.ok()) {
      std::fprintf(stderr, "batch decode (%s, %d streams): %s\n", name, S, st.ToString().c_str());
      return 1;
    }
    for (int i = 0; i < S; ++i) retained += Retained(b.SequenceStats(seqs[i]));
    std::sort(ms.begin(), ms.end());
    const double med = ms[ms.size() / 2];
    const double kv_gb = retained * kv_token_bytes / 1e9;
    const double bytes = b.memory_plan().weights + retained * kv_token_bytes;
    std::printf(
        "{\"kind\":\"batch_decode\",\"config\":\"%s\",\"context\":%d,\"streams\":%d,\"fits\":true,"
        "\"sampling\":\"%s\",\"ms_per_step\":%.3f,\"tokens_per_s\":%.1f,\"kv_read_GB_per_step\":%."
        "2f,"
        "\"bytes_bw_fraction\":%.3f}\n",
        name, a.context, S, SamplingName(a).c_str(), med, S * 1e3 / med, kv_gb,
        a.copy_bytes_per_s > 0 ? bytes / (med * 1e-3) / a.copy_bytes_per_s : 0.0);
    std::fflush(stdout);
  }
  for (SeqId s : seqs) b.ReleaseSequence(s);
  if (!a.capacity) return 0;
  // Capacity at capacity_context: one sequence's footprint after its prefill.
  SeqId s = *b.CreateSequence();
  std::vector<int32_t> long_prompt(a.capacity_context);
  for (int32_t& x : long_prompt) x = static_cast<int32_t>(rng() % cfg.vocab_size);
  Status st = OkStatus();
  for (int pos = 0; pos < a.capacity_context && st.ok(); pos += o.max_batch_tokens) {
    const int n = std::min(o.max_batch_tokens, a.capacity_context - pos);
    ForwardChunk c{s, std::span<const int32_t>(long_prompt.data() + pos, n),
                   pos + n == a.capacity_context ? 1 : 0};
    st = b.Forward({&c, 1}, &logits);
  }
  if (st.ok()) {
    const SequenceKvStats stats = b.SequenceStats(s);
    std::printf("{\"kind\":\"capacity\",\"config\":\"%s\",\"context\":%d,\"blocks_per_stream\":%d,"
                "\"pool_blocks\":%d,\"streams_fit\":%d,\"compression\":%.2f}\n",
                name, a.capacity_context, stats.blocks, b.PoolStats().num_blocks,
                stats.blocks > 0 ? b.PoolStats().num_blocks / stats.blocks : 0, stats.compression_ratio);
  } else {
    std::printf("{\"kind\":\"capacity\",\"config\":\"%s\",\"context\":%d,\"streams_fit\":0,"
                "\"error\":\"one stream does not fit\"}\n", name, a.capacity_context);
  }
  std::fflush(stdout);
  b.ReleaseSequence(s);
  return 0;
}

}  // namespace

int RunBatchDecode(const BatchDecodeArgs& a) {
  auto ckpt = Checkpoint::Load(a.model);
  if (!ckpt.ok()) {
    std::fprintf(stderr, "%s\n", ckpt.status().ToString().c_str());
    return 1;
  }
  std::shared_ptr<const Checkpoint> shared(std::move(*ckpt));
  size_t free_bytes = 0, total = 0;
  cudaMemGetInfo(&free_bytes, &total);
  // Same pool bytes for both configurations: free memory less the weights,
  // the step workspace and cuBLAS (~3 GB), times kv_fraction.
  const double room = static_cast<double>(free_bytes) - WeightBytes(shared->config()) - 3e9;
  const int64_t kv_bytes = static_cast<int64_t>(std::max(1e9, room * a.kv_fraction));
  for (const std::string& config : a.configs) {
    if (config != "dms" && config != "dense" && config != "dms-streamed" &&
        config != "dense-streamed" && config != "dms-mma" && config != "dense-mma") {
      std::fprintf(stderr,
                   "batch decode: unknown config '%s' (dms, dense, dms-streamed, dense-streamed, "
                   "dms-mma, dense-mma)\n",
                   config.c_str());
      return 2;
    }
    if (int rc = RunConfig(a, shared, config, kv_bytes); rc != 0) return rc;
  }
  return 0;
}

}  // namespace dms::bench
