// Device side of the training-free KV policies (docs/kv-policies.md): reading
// one layer's cached entries out for scoring, compacting a layer's heads to
// the kept slots, and the query statistics expected-attention needs.
//
// These run once per request (after its prompt's prefill), never per token.
#pragma once

#include <cstdint>

#include "kernels/kernel_types.h"

namespace dms::cuda {

// Copies slots [0, len) of every KV head of (seq, layer) out of the paged
// pool, converted to f32: k_out, v_out [Hkv, max_len, hd], pos_out
// [Hkv, max_len] (rows past a head's len are left untouched; any output may
// be null). max_len must be at least every head's len.
cudaError_t LaunchKvGatherLayer(const KvDeviceView& kv, int seq, int layer, int max_len,
                                float* k_out, float* v_out, int32_t* pos_out,
                                cudaStream_t stream);

// Keeps, for every KV head h of (seq, layer), the slots
// kept[offsets[h] .. offsets[h + 1]) (ascending, each < the head's len),
// moved to slots [0, kept_h) in the same order (K, V and positions), and sets
// the head's len to kept_h. The page table must still cover the old len.
// max_kept >= every kept_h; scratch: KvCompactScratchBytes(kv, max_kept)
// bytes (room for K, V and the position of max_kept rows per head).
size_t KvCompactScratchBytes(const KvDeviceView& kv, int max_kept);
cudaError_t LaunchKvCompactLayer(const KvDeviceView& kv, int seq, int layer, const int32_t* kept,
                                 const int32_t* offsets, int max_kept, void* scratch,
                                 cudaStream_t stream);

// Running sums of the queries q [rows, Hq, hd] f32, in double: sum [Hq, hd]
// += q_r and outer [Hq, hd, hd] += q_r q_r^T over the rows in row order (the
// CPU backend's summation order, so equal inputs give equal sums).
// hd % 8 == 0 and hd <= 256.
cudaError_t LaunchQueryStats(const float* q, int rows, int num_q_heads, int head_dim, double* sum,
                             double* outer, cudaStream_t stream);

}  // namespace dms::cuda
