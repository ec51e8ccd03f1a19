// Kernel microbenchmarks for dms-cuda-bench (one JSON object per line):
// the tensor-core DMS prefill attention's rate on the visible work, the
// decode GEMV against cuBLAS at m = 1 against the copy bandwidth, and the
// device row sampler.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <vector>

namespace dms::bench {

// Median of `reps` timed runs of fn (after two warm-ups), in ms.
template <typename Fn>
double MedianMs(int reps, Fn fn) {
  fn();
  fn();
  cudaEvent_t e0, e1;
  cudaEventCreate(&e0);
  cudaEventCreate(&e1);
  std::vector<float> ms;
  for (int i = 0; i < reps; ++i) {
    cudaEventRecord(e0);
    fn();
    cudaEventRecord(e1);
    cudaEventSynchronize(e1);
    float t = 0;
    cudaEventElapsedTime(&t, e0, e1);
    ms.push_back(t);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

// Random bf16 values of magnitude in [1, 2) with random signs, host-made
// (seeded, the same every run), copied to dst.
void FillRandomBf16(void* dst, size_t elems);

// Qwen3-8B attention heads (32 query, 8 KV, head_dim 128), one fresh chunk
// of each length: DMS (window 512, eviction rate 0.875) and dense causal.
void BenchPrefillAttention(const std::vector<int>& lengths);

// Qwen3-8B decode shapes (k x n of q;k;v, o, gate;up, down, LM head) at m = 1.
void BenchGemv(double copy_bytes_per_s);

// LaunchSampleRows at Qwen3's vocabulary (151,936) for `rows` rows of
// language-model-like logits, in two configurations: Qwen3's generation
// config (temperature 0.6, top-p 0.95, top-k 20) and temperature 1.0 alone
// (no sort cut: the whole vocabulary). Prints microseconds per launch and the
// logits' bytes (one read) per second as a share of the copy bandwidth.
void BenchSampleRows(const std::vector<int>& rows, double copy_bytes_per_s);

// Qwen3-8B prefill GEMM shapes at m rows through the backend's linear layer,
// with their fraction of the measured bf16 GEMM rate.
void BenchPrefillGemm(int m, double gemm_flop_per_s);

}  // namespace dms::bench
