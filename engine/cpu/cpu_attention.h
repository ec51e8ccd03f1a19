// DMS attention on the CPU: the reference every GPU kernel is checked against.
//
// For each chunk (one sequence's new tokens at one layer), query i attends to
//   * the cached keys of the sequence (already compacted: only retained
//     entries), with the visibility rule applied to those still in the window,
//   * the chunk's own keys j <= i, with the same rule,
// using the decisions d of the chunk's tokens for the marks they set.
// Softmax in fp32 with the max subtracted; GQA group g = Hq / Hkv.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/cpu/thread_pool.h"
#include "engine/kv/dms_kv_cache.h"

namespace dms {

struct AttentionChunk {
  const float* q = nullptr;            // [n, Hq, hd], RoPE applied
  const float* k = nullptr;            // [n, Hkv, hd], RoPE applied
  const float* v = nullptr;            // [n, Hkv, hd]
  const uint8_t* decisions = nullptr;  // [n, Hkv], d of each chunk token
  int n = 0;
  int32_t first_pos = 0;               // position of the chunk's first token
  std::vector<HeadCacheView> cache;    // [Hkv], the cache BEFORE this chunk
  float* out = nullptr;                // [n, Hq, hd]
};

struct AttentionDims {
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int window = 0;  // W, or kDenseWindow
};

void DmsAttention(ThreadPool& pool, const AttentionDims& dims, std::vector<AttentionChunk>& chunks);

}  // namespace dms
