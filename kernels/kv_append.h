// Appending a step's K/V to the DMS cache, on the device (spec section 4).
//
// Per (chunk, KV head) the tokens are appended in position order exactly as
// DmsKvCache::Append does: token t takes the slot of token t-W-1 when that
// one leaves the window marked evicted (d[t-W] == 1), else the next free slot
// (len++); the ring of the last W+1 positions records each one's slot and mark.
// The sequential rule is computed in parallel: a prefix sum numbers the new
// slots, and a reused slot is found by walking back W+1 positions at a time.
// Tokens whose slot a later token of the same chunk reuses are not written,
// so every slot is written at most once per step (no ordering between writers).
// A decode step (every chunk one token) plans and stores in one kernel.
//
// Must run AFTER the chunk's attention: the reused slots still hold keys that
// the chunk's earlier queries see inside the window.
//
// With programmatic launch (kernels/launch.cuh) the decode kernel does its
// work before its PdlWait, beside the kernel enqueued before it, and waits
// only at its end. So in a programmatic launch scope it must be enqueued
// right after a kernel that starts only once the attention's blocks have all
// exited and that touches neither the cache nor the step's new K/V and
// decisions: the CUDA backend enqueues it after the o_proj GEMV, which is
// launched after the attention (which never triggers its dependents early).
#pragma once

#include <cstdint>

#include "kernels/kernel_types.h"

namespace dms::cuda {

// page_table[updates[2i]] = updates[2i + 1] for i < count (host-planned block ids).
cudaError_t LaunchPageTableScatter(int32_t* page_table, const int32_t* updates, int count,
                                   cudaStream_t stream);

struct KvAppendParams {
  KvDeviceView kv;
  int layer = 0;
  const StepChunk* chunks = nullptr;
  int num_chunks = 0;
  const int32_t* row_chunk = nullptr;  // [N] chunk index of each row
  int num_tokens = 0;                  // N
  const void* k_new = nullptr;         // [N, Hkv, hd] kv dtype
  const void* v_new = nullptr;         // [N, Hkv, hd] kv dtype
  const uint8_t* decisions = nullptr;  // [N, Hkv]
  int32_t* slot_scratch = nullptr;     // [N, Hkv] workspace: each token's slot
  int32_t* write_slot = nullptr;       // [N, Hkv] out: slot to write, -1 if superseded
};

// Plans slots, updates len and the ring, then copies K/V and positions into
// the pool. The page table must already cover len + n slots of every head.
// head_dim * dtype size must be a multiple of 16 bytes.
cudaError_t LaunchKvAppend(const KvAppendParams& p, cudaStream_t stream);

}  // namespace dms::cuda
