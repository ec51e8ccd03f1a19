// dms-cuda-bench: the CUDA backend's prefill time to first token and batch-1
// decode rate on a checkpoint, with the device's two ceilings (copy
// bandwidth, bf16 GEMM rate) measured in the same process; decode with its
// parts switched off (graphs, GEMV) to attribute the gains; then kernel
// microbenchmarks (bench_kernels.h). One JSON object per line on stdout
// (scripts/gpu-bench.sh compares them with the peer).
//
//   dms-cuda-bench --model DIR [--prompts 4096,8192] [--decode-contexts 4096]
//                  [--decode-steps 64] [--max-batch-tokens 8192] [--kv-gb 12]
//                  [--attn-lengths 4096,16384] [--micro 0|1]
//                  [--tuning key=value,...]  CudaTuning over its defaults (every run)
//   dms-cuda-bench --model DIR --batch-streams 1,8,32,64 [--batch-context 8192]
//                  [--capacity-context 32768]   batched decode, DMS vs dense
//                  [--batch-steps 16] [--batch-configs dms,dense]
//                  [--batch-temperature T --batch-top-p P --batch-top-k K]  sampled rows
//                  [--batch-profile 1]  profiler range around the timed steps
//                  [--batch-capacity 0] skip the capacity measurement
//                                                (bench_batch_decode.h), only
//   dms-cuda-bench --sampler-rows 1,8,32,64,128  the device row sampler only
//                                                (no model needed); also run
//                                                with the micro benchmarks
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "engine/model/checkpoint.h"
#include "tests/gpu/bench_batch_decode.h"
#include "tests/gpu/bench_kernels.h"

namespace dms {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<int> ParseList(const char* s) {
  std::vector<int> out;
  for (const char* p = s; *p;) {
    out.push_back(std::atoi(p));
    while (*p && *p != ',') ++p;
    if (*p == ',') ++p;
  }
  return out;
}

std::vector<std::string> SplitList(const char* s) {
  std::vector<std::string> out;
  std::string item;
  for (const char* p = s;; ++p) {
    if (*p == ',' || *p == '\0') {
      if (!item.empty()) out.push_back(item);
      item.clear();
      if (*p == '\0') break;
    } else {
      item += *p;
    }
  }
  return out;
}

double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

size_t g_min_free = SIZE_MAX, g_total = 0;
void SampleMemory() {
  size_t free = 0, total = 0;
  if (cudaMemGetInfo(&free, &total) == cudaSuccess) {
    g_min_free = std::min(g_min_free, free);
    g_total = total;
  }
}

// Device-to-device copy of 2 GiB, bytes read plus written per second.
double CopyBandwidth() {
  const size_t bytes = size_t{2} << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) return 0;
  cudaMemset(a, 1, bytes);
  int i = 0;
  const double ms = bench::MedianMs(10, [&] {
    cudaMemcpy(i % 2 ? a : b, i % 2 ? b : a, bytes, cudaMemcpyDeviceToDevice);
    ++i;
  });
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / (ms * 1e-3);
}

// 8192^3 bf16 GEMM with fp32 accumulation on random data, FLOP/s.
double GemmRate() {
  const int n = 8192;
  const size_t elems = static_cast<size_t>(n) * n;
  void *a = nullptr, *b = nullptr, *c = nullptr;
  cudaMalloc(&a, elems * 2);
  cudaMalloc(&b, elems * 2);
  cudaMalloc(&c, elems * 4);
  bench::FillRandomBf16(a, elems);
  bench::FillRandomBf16(b, elems);
  cublasHandle_t h;
  cublasCreate(&h);
  const float one = 1, zero = 0;
  auto run = [&] {
    cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, n, n, &one, a, CUDA_R_16BF, n, b, CUDA_R_16BF, n,
                 &zero, c, CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  };
  run();  // cuBLAS heuristics and workspace before the timed runs
  const double ms = bench::MedianMs(10, run);
  cublasDestroy(h);
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  return 2.0 * n * n * static_cast<double>(n) / (ms * 1e-3);
}

// Feeds `tokens` in steps of at most `max_step`; logits for the last only.
Status Prefill(Backend& b, SeqId seq, const std::vector<int32_t>& tokens, int max_step,
               std::vector<float>* logits) {
  for (size_t pos = 0; pos < tokens.size(); pos += max_step) {
    const int n = static_cast<int>(std::min<size_t>(max_step, tokens.size() - pos));
    const bool last = pos + n == tokens.size();
    ForwardChunk c{seq, std::span<const int32_t>(tokens.data() + pos, n), last ? 1 : 0};
    DMS_RETURN_IF_ERROR(b.Forward({&c, 1}, logits));
  }
  return OkStatus();
}

int Run(int argc, char** argv) {
  std::string model;
  std::vector<int> prompts = {4096, 8192, 16384, 32768}, contexts = {4096, 16384};
  std::vector<int> attn_lengths = {4096, 8192, 16384, 32768};
  std::vector<int> sampler_rows = {1, 8, 32, 64, 128};
  bool sampler_only = false;
  int steps = 64, max_step = 8192, micro = 1;
  double kv_gb = 12;
  bench::BatchDecodeArgs batch;
  batch.streams.clear();
  CudaTuning tuning;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--model") model = argv[i + 1];
    else if (k == "--prompts") prompts = ParseList(argv[i + 1]);
    else if (k == "--decode-contexts") contexts = ParseList(argv[i + 1]);
    else if (k == "--decode-steps") steps = std::atoi(argv[i + 1]);
    else if (k == "--max-batch-tokens") max_step = std::atoi(argv[i + 1]);
    else if (k == "--kv-gb") kv_gb = std::atof(argv[i + 1]);
    else if (k == "--attn-lengths") attn_lengths = ParseList(argv[i + 1]);
    else if (k == "--micro") micro = std::atoi(argv[i + 1]);
    else if (k == "--batch-streams") batch.streams = ParseList(argv[i + 1]);
    else if (k == "--batch-context") batch.context = std::atoi(argv[i + 1]);
    else if (k == "--capacity-context") batch.capacity_context = std::atoi(argv[i + 1]);
    else if (k == "--batch-steps") batch.steps = std::atoi(argv[i + 1]);
    else if (k == "--batch-configs") batch.configs = SplitList(argv[i + 1]);
    else if (k == "--batch-temperature") batch.temperature = std::atof(argv[i + 1]);
    else if (k == "--batch-top-p") batch.top_p = std::atof(argv[i + 1]);
    else if (k == "--batch-top-k") batch.top_k = std::atoi(argv[i + 1]);
    else if (k == "--batch-profile") batch.profile = std::atoi(argv[i + 1]) != 0;
    else if (k == "--batch-capacity") batch.capacity = std::atoi(argv[i + 1]) != 0;
    else if (k == "--tuning") {
      StatusOr<CudaTuning> t = ParseCudaTuning(argv[i + 1]);
      if (!t.ok()) {
        std::fprintf(stderr, "%s\n", t.status().message().c_str());
        return 2;
      }
      tuning = *t;
    } else if (k == "--sampler-rows")
      sampler_rows = ParseList(argv[i + 1]), sampler_only = true;
  }
  if (sampler_only) {
    const double bw = CopyBandwidth();
    std::printf("{\"kind\":\"ceilings\",\"copy_GBps\":%.1f}\n", bw / 1e9);
    bench::BenchSampleRows(sampler_rows, bw);
    return 0;
  }
  if (model.empty()) {
    std::fprintf(stderr, "usage: dms-cuda-bench --model DIR [--prompts a,b] ...\n");
    return 2;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  const double bw = CopyBandwidth(), gemm = GemmRate();
  std::printf("{\"kind\":\"ceilings\",\"device\":\"%s\",\"copy_GBps\":%.1f,\"bf16_gemm_TFLOPs\":%.1f}\n",
              prop.name, bw / 1e9, gemm / 1e12);
  std::printf("{\"kind\":\"tuning\",\"tuning\":\"%s\"}\n", FormatCudaTuning(tuning).c_str());
  std::fflush(stdout);
  if (!batch.streams.empty()) {
    batch.model = model;
    batch.copy_bytes_per_s = bw;
    batch.tuning = tuning;
    return bench::RunBatchDecode(batch);
  }

  const auto t_load = Clock::now();
  auto ckpt = Checkpoint::Load(model);
  if (!ckpt.ok()) {
    std::fprintf(stderr, "%s\n", ckpt.status().ToString().c_str());
    return 1;
  }
  CudaBackendOptions o;
  o.tuning = tuning;
  o.max_batch_tokens = max_step;
  o.max_sequences = 4;
  o.kv_cache_bytes = static_cast<int64_t>(kv_gb * (1 << 30));
  auto made = CudaBackend::Create(std::shared_ptr<const Checkpoint>(std::move(*ckpt)), o);
  if (!made.ok()) {
    std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
    return 1;
  }
  CudaBackend& b = **made;
  const ModelConfig& cfg = b.config();
  SampleMemory();
  const CudaMemoryPlan& plan = b.memory_plan();
  std::printf("{\"kind\":\"load\",\"seconds\":%.2f,\"weights_GB\":%.3f,\"kv_GB\":%.3f,"
              "\"workspace_GB\":%.3f}\n",
              Seconds(t_load, Clock::now()), plan.weights / 1e9, plan.kv_cache / 1e9,
              plan.workspace / 1e9);
  std::mt19937 rng(7);
  auto random_tokens = [&](int n) {
    std::vector<int32_t> t(n);
    for (int32_t& x : t) x = static_cast<int32_t>(rng() % cfg.vocab_size);
    return t;
  };
  std::vector<float> logits;
  {  // warm-up: module load, cuBLAS heuristics
    SeqId s = *b.CreateSequence();
    Status st = Prefill(b, s, random_tokens(1024), max_step, &logits);
    b.ReleaseSequence(s);
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
  }
  for (int len : prompts) {
    SeqId s = *b.CreateSequence();
    const std::vector<int32_t> toks = random_tokens(len);
    const auto t0 = Clock::now();
    Status st = Prefill(b, s, toks, max_step, &logits);
    const double sec = Seconds(t0, Clock::now());
    SampleMemory();
    const SequenceKvStats stats = b.SequenceStats(s);
    b.ReleaseSequence(s);
    if (!st.ok()) {
      std::fprintf(stderr, "prefill %d: %s\n", len, st.ToString().c_str());
      return 1;
    }
    std::printf("{\"kind\":\"ttft\",\"tokens\":%d,\"ms\":%.1f,\"compression\":%.2f}\n", len,
                sec * 1e3, stats.compression_ratio);
    std::fflush(stdout);
  }
  // Batch-1 greedy decode at `ctx` context: median step time, and the
  // sequence's retained tokens (for the roofline). Each step returns what the
  // engine asks of a greedy request's step, the row's LogitSummary (argmax
  // and log-sum-exp, a few bytes to the host); `full_logits` copies the
  // whole 152K-float row instead (tools, sampling with top-k/top-p).
  ForwardResult result;
  auto decode = [&](int ctx, int n_steps, bool full_logits, double* med,
                    int64_t* kept) -> Status {
    SeqId s = *b.CreateSequence();
    Status st = Prefill(b, s, random_tokens(ctx), max_step, &logits);
    int32_t next =
        static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
    std::vector<double> ms;
    for (int i = 0; i < n_steps && st.ok(); ++i) {
      ForwardChunk c{s, std::span<const int32_t>(&next, 1), 1, full_logits};
      const auto t0 = Clock::now();
      st = b.Forward({&c, 1}, &result);
      ms.push_back(Seconds(t0, Clock::now()) * 1e3);
      if (st.ok()) next = result.summaries.at(0).argmax;
    }
    SampleMemory();
    const SequenceKvStats stats = b.SequenceStats(s);
    b.ReleaseSequence(s);
    if (!st.ok()) return st;
    std::sort(ms.begin(), ms.end());
    *med = ms[ms.size() / 2];
    *kept = 0;
    for (const auto& layer : stats.retained)
      for (int r : layer) *kept += r;
    return OkStatus();
  };
  // Bytes a decode step must read: every weight once (the tied/untied LM
  // head included) and every retained K and V. The embedding table is read
  // one row a token: not part of the bytes.
  const double embed = cfg.tie_word_embeddings ? 0.0
                                               : static_cast<double>(cfg.vocab_size) * cfg.hidden_size * 2;
  auto roofline_ms = [&](int64_t kept) {
    const double kv_bytes = static_cast<double>(kept) * 2 * cfg.head_dim * 2;
    return (plan.weights - embed + kv_bytes) / bw * 1e3;
  };
  for (int ctx : contexts) {
    double med = 0;
    int64_t kept = 0;
    Status st = decode(ctx, steps, /*full_logits=*/false, &med, &kept);
    if (!st.ok()) {
      std::fprintf(stderr, "decode %d: %s\n", ctx, st.ToString().c_str());
      return 1;
    }
    const double roof_ms = roofline_ms(kept);
    std::printf("{\"kind\":\"decode\",\"context\":%d,\"ms\":%.3f,\"tokens_per_s\":%.1f,"
                "\"retained_per_head\":%.0f,\"roofline_ms\":%.3f,\"roofline_fraction\":%.3f,"
                "\"graphs\":%zu,\"logits\":\"summary\"}\n",
                ctx, med, 1e3 / med,
                static_cast<double>(kept) / (cfg.num_layers * cfg.num_kv_heads), roof_ms,
                roof_ms / med, b.num_step_graphs());
    std::fflush(stdout);
  }
  // The same decode with the new parts switched off, to attribute the gain.
  if (!contexts.empty()) {
    struct Variant { const char* name; bool graphs, gemv, full_logits; };
    for (const Variant& v :
         {Variant{"full_logits", true, true, true}, Variant{"no_graphs", false, true, false},
          Variant{"cublas_gemv", true, false, false}, Variant{"neither", false, false, false}}) {
      b.set_use_graphs(v.graphs);
      b.set_use_gemv(v.gemv);
      double med = 0;
      int64_t kept = 0;
      if (decode(contexts[0], std::min(steps, 32), v.full_logits, &med, &kept).ok()) {
        std::printf("{\"kind\":\"decode_variant\",\"variant\":\"%s\",\"context\":%d,\"ms\":%.3f,"
                    "\"roofline_fraction\":%.3f}\n",
                    v.name, contexts[0], med, roofline_ms(kept) / med);
        std::fflush(stdout);
      }
    }
    b.set_use_graphs(true);
    b.set_use_gemv(true);
  }
  std::printf("{\"kind\":\"memory\",\"peak_used_GB\":%.3f,\"total_GB\":%.3f}\n",
              (g_total - g_min_free) / 1e9, g_total / 1e9);
  std::fflush(stdout);
  if (micro) {
    bench::BenchSampleRows(sampler_rows, bw);
    bench::BenchGemv(bw);
    bench::BenchPrefillGemm(max_step, gemm);
    bench::BenchPrefillAttention(attn_lengths);
  }
  return 0;
}

}  // namespace
}  // namespace dms

int main(int argc, char** argv) { return dms::Run(argc, argv); }
