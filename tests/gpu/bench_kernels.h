// Kernel microbenchmarks for dms-cuda-bench (one JSON object per line):
// the tensor-core DMS prefill attention's rate on the visible work, and the
// decode GEMV against cuBLAS at m = 1 against the copy bandwidth.
#pragma once

#include <vector>

namespace dms::bench {

// Qwen3-8B attention heads (32 query, 8 KV, head_dim 128), one fresh chunk
// of each length: DMS (window 512, eviction rate 0.875) and dense causal.
void BenchPrefillAttention(const std::vector<int>& lengths);

// Qwen3-8B decode shapes (k x n of q;k;v, o, gate;up, down, LM head) at m = 1.
void BenchGemv(double copy_bytes_per_s);

// Qwen3-8B prefill GEMM shapes at m rows through the backend's linear layer,
// with their fraction of the measured bf16 GEMM rate.
void BenchPrefillGemm(int m, double gemm_flop_per_s);

}  // namespace dms::bench
