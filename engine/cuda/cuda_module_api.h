// The boundary between the main binaries and the CUDA module
// (libdms_cuda.so), which they load with dlopen so that they never link
// cuBLAS themselves (see docs/cuda.md). Header-only, no CUDA includes: the
// backend factory compiles it in every build.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "engine/core/cuda_tuning.h"

#include "engine/core/backend.h"
#include "engine/model/checkpoint.h"
#include "common/status.h"

namespace dms {

struct CudaBackendOptions {
  int device = 0;                      // CUDA device ordinal
  int kv_block_size = 16;              // token slots per KV block
  int64_t kv_cache_bytes = 1LL << 30;  // KV pool budget when kv_num_blocks is 0
  double kv_memory_fraction = 0;       // > 0: pool = this share of the device memory
                                       // free after weights and workspace
  int kv_num_blocks = 0;               // explicit pool size in blocks
  bool force_dense = false;            // --kv-policy dense: no DMS eviction
  // "bf16": bf16 KV cache and bf16 GEMM inputs (serving default).
  // "f32": f32 KV cache and split-bf16 (hi + lo) GEMM inputs: close to the
  // fp32 reference, DMS decisions agree with it (the acceptance mode).
  std::string precision = "bf16";
  int max_batch_tokens = 8192;         // tokens per Forward step (workspace size)
  int max_sequences = 64;              // live sequences (page-table slots)
  // Sample the rows of ForwardChunk::sampling on the device
  // (BackendInfo::sampling; docs/cuda.md). Off: the engine brings sampled
  // rows to the host sampler whole.
  bool device_sampling = true;
  // Performance switches (engine/core/cuda_tuning.h).
  CudaTuning tuning;
};

// Everything the module's factory needs; abi_version guards against a module
// from another build.
struct CudaModuleArgs {
  int abi_version = 0;
  std::shared_ptr<const Checkpoint> checkpoint;
  CudaBackendOptions options;
};

inline constexpr int kCudaModuleAbiVersion = 6;
inline constexpr const char* kCudaModuleFile = "libdms_cuda.so";
inline constexpr const char* kCudaModuleSymbol = "DmsCreateCudaBackend";

// extern "C" Backend* DmsCreateCudaBackend(const CudaModuleArgs*, Status*):
// a new backend (owned by the caller), or null with *status set.
using CudaCreateBackendFn = Backend* (*)(const CudaModuleArgs* args, Status* status);

}  // namespace dms
