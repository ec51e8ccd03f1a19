#include "tests/gpu/bench_kernels.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "engine/cuda/cublas_linear.h"
#include "kernels/attention.h"
#include "kernels/sampling.h"

namespace dms::bench {
namespace {

struct Rng {
  uint64_t s = 88172645463325252ull;
  uint64_t Next() {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return s;
  }
  float Uniform(float lo, float hi) { return lo + (hi - lo) * ((Next() >> 40) * (1.0f / 16777216.0f)); }
};

template <typename T>
T* DeviceCopy(const std::vector<T>& v) {
  T* d = nullptr;
  cudaMalloc(&d, std::max<size_t>(1, v.size()) * sizeof(T));
  cudaMemcpy(d, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
  return d;
}


}  // namespace

void FillRandomBf16(void* dst, size_t elems) {
  std::vector<uint16_t> host(elems);
  uint64_t x = 88172645463325252ull;  // xorshift64
  for (uint16_t& h : host) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    h = static_cast<uint16_t>(0x3c00 | (x & 0x7f) | ((x >> 8) & 1) << 15);  // +-[1, 2)
  }
  cudaMemcpy(dst, host.data(), elems * 2, cudaMemcpyHostToDevice);
}

void BenchPrefillAttention(const std::vector<int>& lengths) {
  constexpr int kHq = 32, kHkv = 8, kHd = 128, kG = kHq / kHkv, kWindow = 512;
  constexpr double kEvict = 0.875;
  for (int n : lengths) {
    Rng rng;
    std::vector<float> q(static_cast<size_t>(n) * kHq * kHd);
    for (float& x : q) x = rng.Uniform(-2, 2);
    std::vector<__nv_bfloat16> kv(static_cast<size_t>(n) * kHkv * kHd);
    for (auto& x : kv) x = __float2bfloat16(rng.Uniform(-1, 1));
    std::vector<uint8_t> dec(static_cast<size_t>(n) * kHkv);
    for (uint8_t& d : dec) d = rng.Uniform(0, 1) < kEvict ? 1 : 0;
    // Visible (query, key) pairs per KV head: j <= i and (i - j <= W or d[j+1] == 0).
    double visible = 0;
    for (int h = 0; h < kHkv; ++h) {
      std::vector<int> kept(n + 1, 0);  // kept[j]: unmarked keys among [0, j)
      for (int j = 0; j < n; ++j) kept[j + 1] = kept[j] + (j + 1 < n && dec[(j + 1) * kHkv + h] ? 0 : 1);
      for (int i = 0; i < n; ++i) visible += std::min(i, kWindow) + 1 + (i > kWindow ? kept[i - kWindow] : 0);
    }
    const double dense = static_cast<double>(kHkv) * n * (n + 1) / 2.0;

    float* d_q = DeviceCopy(q);
    // q as the backend's prefill passes it (the QKV epilogue's bf16 output).
    std::vector<__nv_bfloat16> q16(q.size());
    for (size_t i = 0; i < q.size(); ++i) q16[i] = __float2bfloat16_rn(q[i]);
    __nv_bfloat16* d_q16 = DeviceCopy(q16);
    __nv_bfloat16* d_k = DeviceCopy(kv);
    __nv_bfloat16* d_v = DeviceCopy(kv);
    uint8_t* d_dec = DeviceCopy(dec);
    float* d_out = nullptr;
    cudaMalloc(&d_out, q.size() * sizeof(float));
    std::vector<int32_t> zeros(kHkv * (kWindow + 1), 0);
    int32_t* d_zero = DeviceCopy(zeros);
    uint8_t* d_zero8 = DeviceCopy(std::vector<uint8_t>(zeros.size(), 0));
    cuda::StepChunk chunk{0, 0, n, 0};
    cuda::StepChunk* d_chunk = DeviceCopy(std::vector<cuda::StepChunk>{chunk});
    // Tiles as the backend makes them (heaviest first), for the core in use.
    cuda::AttnTile* d_tiles = nullptr;
    cudaMalloc(&d_tiles, (n / 8 + 1) * sizeof(cuda::AttnTile));
    auto make_tiles = [&] {
      const int per_tile = cuda::DmsAttentionMmaRows(kHd) / kG;
      std::vector<cuda::AttnTile> tiles;
      for (int b = (n - 1) / per_tile * per_tile; b >= 0; b -= per_tile) {
        tiles.push_back({0, b, std::min(per_tile, n - b)});
      }
      cudaMemcpy(d_tiles, tiles.data(), tiles.size() * sizeof(cuda::AttnTile),
                 cudaMemcpyHostToDevice);
      return static_cast<int>(tiles.size());
    };

    cuda::AttentionParams p;
    p.q = d_q;
    p.k_new = d_k;
    p.v_new = d_v;
    p.decisions = d_dec;
    p.chunks = d_chunk;
    p.tiles = d_tiles;
    p.num_tokens = n;
    p.num_q_heads = kHq;
    p.kv.pool = d_k;  // never read: the cache is empty
    p.kv.pool_pos = d_zero;
    p.kv.head_len = d_zero;
    p.kv.page_table = d_zero;
    p.kv.ring_slot = d_zero;
    p.kv.ring_evict = d_zero8;
    p.kv.num_layers = 1;
    p.kv.num_kv_heads = kHkv;
    p.kv.head_dim = kHd;
    p.kv.max_blocks_per_head = 1;
    p.kv.dtype = cuda::KvDType::kBF16;
    p.out = d_out;
    // As the backend runs prefill: bf16 o_proj input, not the f32 output.
    __nv_bfloat16* d_gin = nullptr;
    cudaMalloc(&d_gin, q.size() * sizeof(__nv_bfloat16));
    p.out_gin.hi = d_gin;
    int32_t* d_kept_index = nullptr;
    int32_t* d_kept_count = nullptr;
    cudaMalloc(&d_kept_index, dec.size() * sizeof(int32_t));
    cudaMalloc(&d_kept_count, dec.size() * sizeof(int32_t));
    // Modes: "dms" is what the backend runs (kept list built, then the sparse
    // walk; both timed; wgmma where available; q in bf16), "dms_q_f32" the
    // same reading q in f32 (the backend before 2026-12-06), "dms_ws" the same on the
    // warp-specialized wgmma kernel (attention_ws.cu),
    // "dms_mma_sync" the same on the mma.sync core, "dms_walk_all" the same kernel walking every chunk
    // key (marked old keys masked, not skipped), "dense" the causal kernel.
    struct Mode { const char* name; int window; bool sparse; cuda::AttnMmaCore core; bool q16 = true; };
    const cuda::AttnMmaCore kAuto = cuda::AttnMmaCore::kAuto;
    for (const Mode mode : {Mode{"dms", kWindow, true, kAuto},
                            Mode{"dms_q_f32", kWindow, true, kAuto, false},
                            Mode{"dms_ws", kWindow, true, cuda::AttnMmaCore::kWgmmaWs},
                            Mode{"dms_mma_sync", kWindow, true, cuda::AttnMmaCore::kMmaSync},
                            Mode{"dms_walk_all", kWindow, false, kAuto},
                            Mode{"dense", -1, false, kAuto}}) {
      cuda::SetDmsAttentionMmaCore(mode.core);
      p.q_bf16 = mode.q16 ? d_q16 : nullptr;
      p.num_tiles = make_tiles();
      p.kv.window = mode.window;
      p.kept_index = mode.sparse ? d_kept_index : nullptr;
      p.kept_count = mode.sparse ? d_kept_count : nullptr;
      cudaError_t err = cudaSuccess;
      const double ms = MedianMs(7, [&] {
        if (mode.sparse) {
          err = cuda::LaunchDmsKeptKeys(d_chunk, 1, kHkv, d_dec, d_kept_index, d_kept_count, nullptr);
        }
        if (err == cudaSuccess) err = cuda::LaunchDmsAttentionMma(p, nullptr);
      });
      const cudaError_t sync = cudaDeviceSynchronize();
      cuda::SetDmsAttentionMmaCore(kAuto);
      const double pairs = mode.window < 0 ? dense : visible;
      const double flop = pairs * kG * 4.0 * kHd;
      std::printf("{\"kind\":\"attn\",\"tokens\":%d,\"mode\":\"%s\",\"ms\":%.3f,"
                  "\"visible_share\":%.3f,\"tflops\":%.1f,\"core\":\"%s\",\"error\":\"%s\"}\n",
                  n, mode.name, ms, pairs / dense, flop / (ms * 1e9),
                  mode.core == cuda::AttnMmaCore::kMmaSync || !cuda::DmsAttentionWgmmaAvailable()
                      ? "mma_sync"
                      : mode.core == cuda::AttnMmaCore::kWgmmaWs ? "wgmma_ws" : "wgmma",
                  cudaGetErrorString(err != cudaSuccess ? err : sync));
      std::fflush(stdout);
    }
    cudaFree(d_kept_index);
    cudaFree(d_gin);
    cudaFree(d_kept_count);
    for (void* ptr : {static_cast<void*>(d_q), static_cast<void*>(d_q16), static_cast<void*>(d_k), static_cast<void*>(d_v),
                      static_cast<void*>(d_dec), static_cast<void*>(d_out), static_cast<void*>(d_zero),
                      static_cast<void*>(d_zero8), static_cast<void*>(d_chunk),
                      static_cast<void*>(d_tiles)}) {
      cudaFree(ptr);
    }
  }
}

void BenchGemv(double copy_bytes_per_s) {
  struct Shape { const char* name; int k, n; };
  const Shape shapes[] = {{"qkv", 4096, 6144}, {"o", 4096, 4096}, {"gate_up", 4096, 24576},
                          {"down", 12288, 4096}, {"lm_head", 4096, 151936}};
  CublasLinear linear;
  if (!linear.Init(nullptr).ok()) return;
  const size_t pool_bytes = size_t{1536} << 20;  // rotated through: far more than L2
  __nv_bfloat16* pool = nullptr;
  if (cudaMalloc(&pool, pool_bytes) != cudaSuccess) return;
  cudaMemset(pool, 0x3c, pool_bytes);  // bf16 ~0.0115: finite, not zero
  Rng rng;
  std::vector<__nv_bfloat16> x(12288);
  for (auto& v : x) v = __float2bfloat16(rng.Uniform(-1, 1));
  __nv_bfloat16* d_x = DeviceCopy(x);
  float* d_y = nullptr;
  cudaMalloc(&d_y, 151936 * sizeof(float));
  for (const Shape& s : shapes) {
    const size_t bytes = static_cast<size_t>(s.k) * s.n * 2;
    const int copies = static_cast<int>(std::max<size_t>(1, pool_bytes / bytes));
    for (bool gemv : {false, true}) {
      linear.set_use_gemv(gemv);
      int next = 0;
      bool ok = true;
      const double ms = MedianMs(21, [&] {
        const __nv_bfloat16* w = pool + (static_cast<size_t>(next++ % copies) * bytes) / 2;
        ok &= linear.Run({d_x, nullptr}, 1, s.k, w, s.n, d_y).ok();
      });
      std::printf("{\"kind\":\"gemv\",\"shape\":\"%s\",\"k\":%d,\"n\":%d,\"impl\":\"%s\",\"us\":%.1f,"
                  "\"GBps\":%.0f,\"copy_fraction\":%.3f,\"ok\":%s}\n",
                  s.name, s.k, s.n, gemv ? "gemv" : "cublas", ms * 1e3, bytes / (ms * 1e6),
                  bytes / (ms * 1e-3) / copy_bytes_per_s, ok ? "true" : "false");
      std::fflush(stdout);
    }
  }
  cudaFree(pool);
  cudaFree(d_x);
  cudaFree(d_y);
}

void BenchSampleRows(const std::vector<int>& rows_list, double copy_bytes_per_s) {
  constexpr int kVocab = 151936;
  struct Config {
    const char* name;
    float temperature, top_p;
    int top_k;
  };
  const Config configs[] = {{"t0.6_p0.95_k20", 0.6f, 0.95f, 20}, {"t1.0", 1.0f, 1.0f, 0}};
  const int max_rows = *std::max_element(rows_list.begin(), rows_list.end());
  // Language-model-like rows: a bulk of N(0, 2)-ish values (sum of uniforms)
  // and a few tokens 5-15 above it.
  Rng rng;
  std::vector<float> logits(static_cast<size_t>(max_rows) * kVocab);
  for (float& x : logits) x = rng.Uniform(-2, 2) + rng.Uniform(-2, 2) + rng.Uniform(-2, 2);
  for (int r = 0; r < max_rows; ++r) {
    for (int j = 0; j < 30; ++j)
      logits[static_cast<size_t>(r) * kVocab + rng.Next() % kVocab] += rng.Uniform(5, 15);
  }
  float* d_logits = DeviceCopy(logits);
  cuda::LogitRowSummary* d_summary = nullptr;
  cuda::SampledRow* d_out = nullptr;
  void* d_scratch = nullptr;
  cudaMalloc(&d_summary, max_rows * sizeof(cuda::LogitRowSummary));
  cudaMalloc(&d_out, max_rows * sizeof(cuda::SampledRow));
  cudaMalloc(&d_scratch, std::max<size_t>(1, cuda::LogitSummaryScratchBytes(max_rows, kVocab)));
  cuda::LaunchLogitSummary(d_logits, max_rows, kVocab, d_scratch, d_summary, nullptr);
  for (const Config& cfg : configs) {
    std::vector<cuda::RowSamplingParams> params(max_rows);
    for (int r = 0; r < max_rows; ++r) {
      params[r] = cuda::RowSamplingParams{cfg.temperature,
                                          cfg.top_k,
                                          cfg.top_p,
                                          0.0f,
                                          1.0f,
                                          0.0f,
                                          0.0f,
                                          -1,
                                          0,
                                          (rng.Next() >> 11) * (1.0 / 9007199254740992.0)};
    }
    cuda::RowSamplingParams* d_params = DeviceCopy(params);
    for (int rows : rows_list) {
      cudaError_t err = cudaSuccess;
      const double ms = MedianMs(21, [&] {
        err = cuda::LaunchSampleRows(d_logits, rows, kVocab, d_params, d_summary,
                                     cuda::PenaltyState{}, nullptr, d_out, nullptr);
      });
      const cudaError_t sync = cudaDeviceSynchronize();
      const double bytes = static_cast<double>(rows) * kVocab * sizeof(float);
      std::printf(
          "{\"kind\":\"sampler\",\"config\":\"%s\",\"rows\":%d,\"vocab\":%d,\"us\":%.1f,"
          "\"GBps\":%.0f,\"copy_fraction\":%.3f,\"error\":\"%s\"}\n",
          cfg.name, rows, kVocab, ms * 1e3, bytes / (ms * 1e6),
          bytes / (ms * 1e-3) / copy_bytes_per_s,
          cudaGetErrorString(err != cudaSuccess ? err : sync));
      std::fflush(stdout);
    }
    cudaFree(d_params);
  }
  cudaFree(d_logits);
  cudaFree(d_summary);
  cudaFree(d_out);
  cudaFree(d_scratch);
}

// Prefill GEMMs as the backend runs them (CublasLinear: bf16 in, fp32 out,
// fp32 accumulate) at m rows, against the measured GEMM ceiling.
void BenchPrefillGemm(int m, double gemm_flop_per_s) {
  struct Shape { const char* name; int k, n; };
  const Shape shapes[] = {{"qkv", 4096, 6144}, {"o", 4096, 4096}, {"gate_up", 4096, 24576},
                          {"down", 12288, 4096}};
  CublasLinear linear;
  if (!linear.Init(nullptr).ok()) return;
  __nv_bfloat16 *d_x = nullptr, *d_w = nullptr;
  float* d_y = nullptr;
  if (cudaMalloc(&d_x, static_cast<size_t>(m) * 12288 * 2) != cudaSuccess ||
      cudaMalloc(&d_w, size_t{12288} * 24576 * 2) != cudaSuccess ||
      cudaMalloc(&d_y, static_cast<size_t>(m) * 24576 * 4) != cudaSuccess) {
    return;
  }
  // Random inputs, as the ceiling's GEMM: constant bytes draw less power
  // and run faster than real data.
  FillRandomBf16(d_x, static_cast<size_t>(m) * 12288);
  FillRandomBf16(d_w, size_t{12288} * 24576);
  double total_flop = 0, total_ms = 0;
  for (const Shape& s : shapes) {
    bool ok = true;
    const double ms = MedianMs(11, [&] { ok &= linear.Run({d_x, nullptr}, m, s.k, d_w, s.n, d_y).ok(); });
    const double flop = 2.0 * m * s.k * s.n;
    total_flop += flop;
    total_ms += ms;
    std::printf("{\"kind\":\"prefill_gemm\",\"shape\":\"%s\",\"m\":%d,\"k\":%d,\"n\":%d,\"ms\":%.3f,"
                "\"tflops\":%.1f,\"ceiling_fraction\":%.3f,\"ok\":%s}\n",
                s.name, m, s.k, s.n, ms, flop / (ms * 1e9), flop / (ms * 1e-3) / gemm_flop_per_s,
                ok ? "true" : "false");
  }
  std::printf("{\"kind\":\"prefill_gemm\",\"shape\":\"layer\",\"m\":%d,\"k\":0,\"n\":0,\"ms\":%.3f,"
              "\"tflops\":%.1f,\"ceiling_fraction\":%.3f,\"ok\":true}\n",
              m, total_ms, total_flop / (total_ms * 1e9), total_flop / (total_ms * 1e-3) / gemm_flop_per_s);
  std::fflush(stdout);
  cudaFree(d_x);
  cudaFree(d_w);
  cudaFree(d_y);
}

}  // namespace dms::bench
