// Types shared by the CUDA kernels' host launchers and their callers (the
// CUDA backend and the GPU tests). Plain structs passed by value to kernels;
// every pointer is device memory unless noted.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace dms::cuda {

// Storage type of the KV cache (and of the chunk's own K/V in the workspace).
// kBF16 is the serving default; kF32 is the accuracy mode (see docs/cuda.md).
enum class KvDType : int { kBF16 = 0, kF32 = 1 };

inline int KvDTypeSize(KvDType t) { return t == KvDType::kBF16 ? 2 : 4; }

// Launchers' check for 16-byte vector access (null counts as aligned: absent).
inline bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }
inline bool Aligned8(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 7) == 0; }

// Activations that feed a cuBLAS GEMM: bf16 `hi` [rows, k], and in the
// accuracy mode also `lo` = bf16(x - hi), so hi + lo carries ~16 mantissa bits
// and W·x = W·hi + W·lo is computed as two bf16 GEMMs with fp32 accumulation.
struct GemmInput {
  __nv_bfloat16* hi = nullptr;
  __nv_bfloat16* lo = nullptr;  // null: plain bf16 activations
};

// The paged, compacting DMS KV cache in device memory (spec section 4). A
// "head" is one (sequence slot, layer, KV head); its index is
// (seq * num_layers + layer) * num_kv_heads + kv_head.
struct KvDeviceView {
  void* pool = nullptr;          // [num_blocks, 2 (k, v), block_size, head_dim] of dtype
  int32_t* pool_pos = nullptr;   // [num_blocks, block_size] position of the token in a slot
  int32_t* head_len = nullptr;   // [heads] retained slots in use; slots [0, len) are valid
  int32_t* page_table = nullptr; // [heads, max_blocks_per_head] block ids
  int32_t* ring_slot = nullptr;  // [heads, W+1] slot of position p at p % (W+1)
  uint8_t* ring_evict = nullptr; // [heads, W+1] d[p+1] of position p (0 while unknown)
  int num_layers = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int block_size = 16;
  int max_blocks_per_head = 0;
  int window = 0;                // W; < 0: dense (no eviction, no ring)
  KvDType dtype = KvDType::kBF16;
};

// One sequence's chunk of new tokens in a step. Rows of the step's token
// arrays are [row_base, row_base + n).
struct StepChunk {
  int32_t seq = 0;        // sequence slot
  int32_t start_pos = 0;  // T0: tokens the sequence held before the chunk
  int32_t n = 0;
  int32_t row_base = 0;
};

// A tile of queries of one chunk for the attention kernel: tokens
// [q_begin, q_begin + q_count) of the chunk, all query heads of a KV group.
struct AttnTile {
  int32_t chunk = 0;
  int32_t q_begin = 0;
  int32_t q_count = 0;
};

}  // namespace dms::cuda
