// Creates the backend a user asked for: "cpu", "cuda" (the CUDA module,
// loaded with dlopen), or "auto" (CUDA when a GPU is usable, else CPU).
#pragma once

#include <memory>
#include <string>

#include "engine/core/backend.h"
#include "engine/core/cuda_tuning.h"
#include "engine/model/checkpoint.h"

namespace dms {

struct BackendOptions {
  std::string kind = "cpu";        // cpu | cuda | auto
  int num_threads = 0;             // CPU worker threads (0: all)
  int kv_block_size = 16;          // token slots per KV block
  int64_t kv_cache_bytes = 1LL << 30;  // KV pool budget
  // > 0: the CUDA backend sizes its pool as this share of the device memory
  // left after weights and workspace (kv_cache_bytes is then ignored there;
  // the CPU backend still takes kv_cache_bytes, a share of host memory).
  double kv_memory_fraction = 0;
  int kv_num_blocks = 0;           // explicit pool size (overrides the budget)
  bool force_dense = false;        // --kv-policy dense: no DMS eviction
  // CUDA only (engine/cuda/cuda_module_api.h): "bf16" or "f32" KV/activations,
  // tokens per step, live sequences; 0 keeps the CUDA backend's default.
  std::string precision = "bf16";
  int max_batch_tokens = 0;
  int max_sequences = 0;
  bool device_sampling = true;  // CUDA: sample on the device (CudaBackendOptions)
  CudaTuning cuda_tuning;       // CUDA: performance switches (cuda_tuning.h)
};

// INVALID_ARGUMENT for an unknown kind; UNAVAILABLE when "cuda" is asked for
// and cannot be used (module not built, no GPU), saying which.
StatusOr<std::unique_ptr<Backend>> CreateBackend(std::shared_ptr<const Checkpoint> checkpoint,
                                                 const BackendOptions& options);

}  // namespace dms
