// DMS attention over the paged, compacting cache plus the chunk's own keys.
//
// For query i of a chunk (position T0 + qi) and KV head h, the keys are the
// head's cached slots [0, len) (the cache BEFORE this chunk is appended) and
// the chunk's own keys 0..qi. Key j is visible iff j <= i and (i - j <= W or
// d[j+1] == 0) (spec section 3): the mark d[j+1] of a cached key comes from
// the head's ring (or, for the newest cached token, from the chunk's first
// decision); the mark of a chunk key from the chunk's next decision.
//
// One kernel serves prefill and decode: a block takes a tile of queries of one
// chunk with all g query heads of a KV group (one pass over K/V serves the
// group), and a slice of the key range (split-K); with more than one split
// the partial (max, sum, accumulator) triples are merged by the last of a
// (tile, head)'s split blocks to finish (a counter per tile and head).
// Softmax in fp32 with the running max subtracted (online softmax).
#pragma once

#include <cstdint>

#include "kernels/kernel_types.h"

namespace dms::cuda {

// Query rows (tokens x group heads) per block of the SIMT kernel; its tiles
// hold max(1, 16 / g) tokens.
inline constexpr int kAttnMaxRows = 16;
// Warps of a SIMT kernel block, and the splits one warp of its merge folds
// in one round (one L2 round trip, all loads in flight).
inline constexpr int kAttnSimtWarps = 8;
inline constexpr int kAttnSimtBlocksPerSm = 2;  // its __launch_bounds__ (128 registers)
inline constexpr int kAttnMergeRound = 16;

// Warps of the SIMT kernel's merge that fold one of a tile's `rows` query
// rows (the kernel and the split planner both follow this).
constexpr int DmsAttentionMergeWarpsPerRow(int rows) {
  return rows < kAttnSimtWarps ? kAttnSimtWarps / rows : 1;
}
// Splits the merge takes in one round for a decode tile of a GQA group of g
// (g query rows).
constexpr int DmsAttentionMergeRoundSplits(int g) {
  return kAttnMergeRound * DmsAttentionMergeWarpsPerRow(g);
}
// Query rows per block of the tensor-core kernel on its mma.sync core; its
// tiles hold kAttnMmaRows / g tokens. The wgmma core takes twice as many:
// DmsAttentionMmaRows() says which applies to the next launch.
inline constexpr int kAttnMmaRows = 64;
inline constexpr int kAttnWgmmaRows = 128;

struct AttentionParams {
  const float* q = nullptr;         // [N, Hq, hd] f32, RoPE applied
  // Tensor-core kernel: q already rounded to bf16 (the QKV epilogue's
  // q_out_bf16), read instead of q: the same values it would round q to.
  const __nv_bfloat16* q_bf16 = nullptr;  // [N, Hq, hd]
  const void* k_new = nullptr;      // [N, Hkv, hd] kv dtype: the chunk's own keys
  const void* v_new = nullptr;      // [N, Hkv, hd] kv dtype
  const uint8_t* decisions = nullptr;  // [N, Hkv]
  const StepChunk* chunks = nullptr;
  const AttnTile* tiles = nullptr;
  int num_tiles = 0;
  int num_tokens = 0;               // N
  int num_q_heads = 0;
  int layer = 0;
  KvDeviceView kv;                  // head_dim, window, dtype come from here
  int num_splits = 1;
  float* out = nullptr;             // [N, Hq, hd] f32
  float* part_o = nullptr;          // [num_splits, N, Hq, hd]   (num_splits > 1)
  float* part_ml = nullptr;         // [num_splits, N, Hq, 2]    (num_splits > 1)
  // [num_tiles, Hkv] (num_splits > 1): zero before the first launch; every
  // launch leaves it zero again.
  int32_t* split_count = nullptr;
  // SIMT kernel with num_splits > 1: the merge also writes out as GEMM
  // input (saves a conversion pass in decode). Tensor-core kernel: with hi
  // set (lo must be null), the output goes there as bf16 INSTEAD of `out`
  // (prefill's o_proj input, no f32 pass). Null hi: not written.
  GemmInput out_gin;
  // Tensor-core kernel, optional (both or neither; ignored for a dense
  // window): the chunk's unmarked keys from LaunchDmsKeptKeys. A tile then
  // reads the chunk keys older than all its queries' windows from this list
  // instead of walking them all (the marked ones are invisible to it).
  const int32_t* kept_index = nullptr;  // [N, Hkv]
  const int32_t* kept_count = nullptr;  // [N, Hkv]
  // Tensor-core kernel, optional with the kept list (both or neither): the
  // cached slots a tile past its chunk's first W + 1 queries walks
  // (LaunchDmsCachedKeptKeys). Such a tile sees none of the marked keys the
  // cache still holds for the chunk's first queries, so it walks slots
  // [0, tail_lo) and then the listed ones instead of all of [0, len).
  const int32_t* cache_kept_index = nullptr;  // [N, Hkv]
  const int32_t* cache_tail = nullptr;        // [num_chunks, Hkv, 2]
};

// The unmarked keys of each chunk per KV head, for the sparse walk of the
// tensor-core kernel. Chunk key jj (row r = row_base + jj) is marked iff
// jj + 1 < n and decisions[r + 1][h] != 0 (the mark comes from the next
// token; the last key of a chunk counts as unmarked). Writes
//   kept_count[r][h] = unmarked keys among chunk keys [0, jj]   (inclusive)
//   kept_index[row_base + k][h] = jj of the k-th unmarked key (k < count)
// Rows past a chunk's count in kept_index are left as they are.
// grid: (num_chunks, Hkv). An index computation: bit-exact by construction.
cudaError_t LaunchDmsKeptKeys(const StepChunk* chunks, int num_chunks, int num_kv_heads,
                              const uint8_t* decisions,  // [N, Hkv]
                              int32_t* kept_index, int32_t* kept_count, cudaStream_t stream);

// The cached slots a chunk's later tiles can see, per KV head: the cache
// before the chunk holds, besides its retained keys, the marked keys of the
// last W + 1 positions (t0 - W - 1 .. t0 - 1), kept for the chunk's first
// queries. A query W + 1 or more past t0 - 1 sees none of them (spec section
// 3), and neither does any tile whose first query is past the window
// (q_begin > W, where the kept list of the chunk's own keys applies too).
// For chunk c (grid x) and head h (grid y), with len = the head's slots,
// lo = t0 - W - 1 and a slot's mark as the attention reads it (the ring, or
// the chunk's first decision for position t0 - 1):
//   tail_lo = the first slot holding a position >= lo (len if none)
//   cache_kept_index[row_base + k][h] = the pool row (block * block_size +
//     offset, pool_pos's index) of the k-th slot s in [tail_lo, len) with
//     position < lo or unmarked, in slot order
//   cache_tail[c][h] = {tail_lo, that count}
// When the list would not fit the chunk's rows (len - tail_lo > n), or the
// chunk has no tile it applies to (n <= W + 1), or the window is dense:
// {len, 0}, i.e. walk every slot. An index computation: bit-exact.
cudaError_t LaunchDmsCachedKeptKeys(const StepChunk* chunks, int num_chunks, const KvDeviceView& kv,
                                    int layer,
                                    const uint8_t* decisions,  // [N, Hkv]
                                    int32_t* cache_kept_index, int32_t* cache_tail,
                                    cudaStream_t stream);

// SIMT fp32 kernel (attention.cu): any cache dtype, split-K for decode.
// head_dim in {16, 32, 64, 128}; Hq / Hkv at most kAttnMaxRows.
cudaError_t LaunchDmsAttention(const AttentionParams& p, cudaStream_t stream);

// Decode kernel (attention_decode.cu): every tile one decode token (q_count
// 1, the chunk's only row), a block its g query heads over one split of the
// keys, K and V streamed through shared memory with cp.async; the same
// outputs and split merge as LaunchDmsAttention. bf16 cache, head_dim 64 or
// 128, g <= kAttnDecodeMaxGroup.
inline constexpr int kAttnDecodeMaxGroup = 8;
inline constexpr int kAttnDecodeBlocksPerSm = 2;  // its __launch_bounds__ (128 registers)
bool DmsDecodeAttentionSupported(KvDType dtype, int head_dim, int group);
cudaError_t LaunchDmsDecodeAttention(const AttentionParams& p, cudaStream_t stream);

// Tensor-core kernel for prefill (attention_mma.cu): FlashAttention-2 style,
// wgmma (sm_90a) or mma.sync bf16 with fp32 accumulation and online softmax; a block
// takes DmsAttentionMmaRows(head_dim) query rows (that / g tokens x the g heads of a
// KV group) and walks the keys in tiles of 64, skipping tiles that no query
// of the block can see; with kept_index/kept_count set, the chunk keys older
// than every query's window are read from the list of unmarked keys (the
// others are invisible: sparse, and still exact). q is rounded to bf16, and so are the softmax weights
// before P.V. bf16 cache only; head_dim 64 or 128; num_splits must be 1;
// tiles hold at most DmsAttentionMmaRows(head_dim) / g tokens.
bool DmsAttentionMmaSupported(KvDType dtype, int head_dim, int group);
cudaError_t LaunchDmsAttentionMma(const AttentionParams& p, cudaStream_t stream);
// Benchmarks: the register budget variant of the tensor-core kernel, for 2
// or 3 (default) resident blocks per multiprocessor. Not thread-safe.
void SetDmsAttentionMmaMinBlocks(int blocks);

// Which tensor-core kernel runs: kAuto (the default) takes the
// FlashAttention-2 style wgmma kernel (kWgmma) where
// DmsAttentionWgmmaAvailable() and mma.sync elsewhere; kWgmmaWs is the
// warp-specialized wgmma kernel (attention_ws.h; correct, not yet faster).
// The CUDA backend sets it from CudaTuning::attention_core. Forcing a wgmma kernel where it is not available makes
// the launch fail with cudaErrorInvalidDeviceFunction. Tests and
// benchmarks; not thread-safe.
enum class AttnMmaCore { kAuto, kMmaSync, kWgmma, kWgmmaWs };
void SetDmsAttentionMmaCore(AttnMmaCore core);
// True on an sm_90 device when this binary carries sm_90a code.
bool DmsAttentionWgmmaAvailable();
// Query rows per block of the next LaunchDmsAttentionMma at this head_dim
// (kAttnWgmmaRows when it will run wgmma, head_dim 128 only; else
// kAttnMmaRows): tiles must hold at most that / g tokens.
int DmsAttentionMmaRows(int head_dim);

}  // namespace dms::cuda
