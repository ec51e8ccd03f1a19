// KvHarness: drives the CPU reference cache (DmsKvCache) and the CUDA cache
// (CudaKvCache + kernels/kv_append.h) through the same steps, so the GPU
// append can be compared bit for bit and GPU attention can run over the
// same cache state as the CPU reference attention.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "engine/cuda/cuda_kv_cache.h"
#include "engine/kv/dms_kv_cache.h"
#include "kernels/kernel_types.h"
#include "tests/gpu/gpu_test_util.h"

namespace dms::gpu_testing {

struct KvHarnessConfig {
  int num_layers = 2;
  int layer = 1;  // the layer the steps go to (not 0, to exercise head indexing)
  int num_kv_heads = 2;
  int head_dim = 64;
  int window = 8;  // or kDenseWindow
  int block_size = 16;
  int num_blocks = 4096;
  int max_sequences = 8;
  cuda::KvDType dtype = cuda::KvDType::kBF16;
};

// One step's new tokens: chunks of (sequence, n) with their K/V (already
// rounded to the cache dtype) and decisions.
struct KvStep {
  std::vector<cuda::StepChunk> chunks;
  std::vector<int32_t> row_chunk;  // [N]
  std::vector<float> k, v;         // [N, Hkv, hd]
  std::vector<uint8_t> dec;        // [N, Hkv]
  int num_tokens = 0;
};

class KvHarness {
 public:
  explicit KvHarness(const KvHarnessConfig& config);

  const KvHarnessConfig& config() const { return config_; }
  SeqId AddSequence();
  int Tokens(SeqId seq) const { return cpu_->LogicalTokens(seq); }
  DmsKvCache& cpu() { return *cpu_; }
  CudaKvCache& gpu() { return *gpu_; }

  // Random K/V in [-1, 1] and decisions d ~ Bernoulli(evict_rate).
  KvStep MakeStep(const std::vector<std::pair<SeqId, int>>& chunks, double evict_rate,
                  std::mt19937_64& rng) const;
  // Copies the step's chunks, rows, K/V (cache dtype) and decisions to the device.
  void Upload(const KvStep& step);
  const cuda::StepChunk* d_chunks() const { return d_chunks_.get(); }
  const int32_t* d_row_chunk() const { return d_row_chunk_.get(); }
  const void* d_k() const { return d_k_.get(); }
  const void* d_v() const { return d_v_.get(); }
  const uint8_t* d_dec() const { return d_dec_.get(); }

  // Appends an uploaded step to both caches.
  ::testing::AssertionResult Append(const KvStep& step);
  // Every head of `seq` at the test layer: length, each slot's position and
  // K/V bits, and the ring's marks, GPU against CPU.
  ::testing::AssertionResult CompareState(SeqId seq);

 private:
  KvHarnessConfig config_;
  std::unique_ptr<DmsKvCache> cpu_;
  std::unique_ptr<CudaKvCache> gpu_;
  DevArray<cuda::StepChunk> d_chunks_;
  DevArray<int32_t> d_row_chunk_;
  DevArray<uint8_t> d_k_, d_v_;  // raw bytes of the cache dtype
  DevArray<uint8_t> d_dec_;
  DevArray<int32_t> d_updates_, d_slot_scratch_, d_write_slot_;
};

}  // namespace dms::gpu_testing
