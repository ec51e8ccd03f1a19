// Types every KV cache and its users share: sequence ids, the dense-window
// marker, pool and per-sequence statistics. No storage, no bookkeeping.
#pragma once

#include <cstdint>
#include <vector>

namespace dms {

using SeqId = int32_t;

// A window of kDenseWindow disables eviction (plain Qwen3: a dense cache).
inline constexpr int kDenseWindow = -1;

struct KvPoolStats {
  int num_blocks = 0;
  int blocks_used = 0;
  int blocks_free = 0;
  int block_size = 0;
  int num_sequences = 0;
  int64_t logical_tokens = 0;   // sum over sequences of tokens seen
  int64_t retained_tokens = 0;  // sum over sequences, layers and KV heads of cached entries
  int shared_blocks = 0;        // blocks held by more than one sequence
};

struct SequenceKvStats {
  int logical_tokens = 0;
  std::vector<std::vector<int>> retained;  // [layers][kv_heads]
  int blocks = 0;
  // T / retained averaged over layers and KV heads (spec section 4); 1 when empty.
  double compression_ratio = 1.0;
};

}  // namespace dms
