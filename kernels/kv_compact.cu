#include "kernels/kv_compact.h"

#include "kernels/device_util.cuh"

namespace dms::cuda {
namespace {

constexpr int kRowsPerBlock = 32;  // cache slots per block (gather, compaction)
constexpr int kThreads = 128;
constexpr int kStatRows = 8;       // rows a of the outer-product matrix per block
constexpr int kStatTile = 32;      // query rows staged in shared memory per pass

__device__ __forceinline__ int64_t HeadIndex(const KvDeviceView& kv, int seq, int layer, int h) {
  return (static_cast<int64_t>(seq) * kv.num_layers + layer) * kv.num_kv_heads + h;
}

// grid (ceil(max_len / kRowsPerBlock), Hkv): one block per run of slots of a head.
template <typename T>
__global__ void KvGatherLayerKernel(KvDeviceView kv, int seq, int layer, int max_len, float* k_out,
                                    float* v_out, int32_t* pos_out) {
  const int h = blockIdx.y, hd = kv.head_dim, bs = kv.block_size;
  const int64_t head = HeadIndex(kv, seq, layer, h);
  const int len = min(kv.head_len[head], max_len);
  const int32_t* pt = kv.page_table + head * kv.max_blocks_per_head;
  const T* pool = static_cast<const T*>(kv.pool);
  const int s0 = blockIdx.x * kRowsPerBlock;
  for (int i = threadIdx.x; i < kRowsPerBlock * hd; i += blockDim.x) {
    const int s = s0 + i / hd, d = i % hd;
    if (s >= len) continue;
    const int64_t block = pt[s / bs];
    const int off = s % bs;
    const T* k = pool + (block * 2 * bs + off) * hd;  // V follows K's block_size rows
    const int64_t o = (static_cast<int64_t>(h) * max_len + s) * hd + d;
    if (k_out) k_out[o] = ToFloat(k[d]);
    if (v_out) v_out[o] = ToFloat(k[static_cast<int64_t>(bs) * hd + d]);
    if (pos_out && d == 0) pos_out[static_cast<int64_t>(h) * max_len + s] = kv.pool_pos[block * bs + off];
  }
}

// Compaction in two passes, because in place a slot may be overwritten
// (as the destination of kept index i) before an earlier index reads it: pass
// one copies every moving row (kept[i] != i) to scratch [total, 2, hd] (K, V
// as raw 16-byte pieces of the cache dtype) and its position; pass two writes
// them to slots i and sets the length. Rows already in place are not touched.
// grid (ceil(max_kept / kRowsPerBlock), Hkv).
template <bool kToScratch>
__global__ void KvCompactKernel(KvDeviceView kv, int seq, int layer, const int32_t* kept,
                                const int32_t* offsets, int pieces, uint4* scratch_kv,
                                int32_t* scratch_pos) {
  const int h = blockIdx.y, bs = kv.block_size;
  const int64_t head = HeadIndex(kv, seq, layer, h);
  const int base = offsets[h], n = offsets[h + 1] - base;
  const int32_t* pt = kv.page_table + head * kv.max_blocks_per_head;
  uint4* pool = static_cast<uint4*>(kv.pool);
  const int i0 = blockIdx.x * kRowsPerBlock;
  for (int t = threadIdx.x; t < kRowsPerBlock * pieces; t += blockDim.x) {
    const int i = i0 + t / pieces, d = t % pieces;
    if (i >= n) continue;
    const int from = kept[base + i];
    if (from == i) continue;
    const int slot = kToScratch ? from : i;
    const int64_t block = pt[slot / bs];
    const int off = slot % bs;
    uint4* kp = pool + (block * 2 * bs + off) * pieces;
    uint4* vp = kp + static_cast<int64_t>(bs) * pieces;
    uint4* ks = scratch_kv + static_cast<int64_t>(base + i) * 2 * pieces;
    uint4* vs = ks + pieces;
    if (kToScratch) {
      ks[d] = kp[d];
      vs[d] = vp[d];
      if (d == 0) scratch_pos[base + i] = kv.pool_pos[block * bs + off];
    } else {
      kp[d] = ks[d];
      vp[d] = vs[d];
      if (d == 0) kv.pool_pos[block * bs + off] = scratch_pos[base + i];
    }
  }
  if (!kToScratch && blockIdx.x == 0 && threadIdx.x == 0) kv.head_len[head] = n;
}

// grid (hd / kStatRows, Hq), block hd threads: thread b owns column b of
// rows [a0, a0 + kStatRows) of the head's outer-product matrix (and, in the
// blocks with a0 == 0, sum[b]), and adds the rows' products in row order.
// Products of two floats are exact in double, so the sums are the CPU's.
__global__ void QueryStatsKernel(const float* q, int rows, int hq, double* sum, double* outer) {
  extern __shared__ float tile[];  // [kStatTile, hd]
  const int hd = blockDim.x, h = blockIdx.y, a0 = blockIdx.x * kStatRows, b = threadIdx.x;
  double* o = outer + (static_cast<int64_t>(h) * hd + a0) * hd + b;
  double acc[kStatRows];
#pragma unroll
  for (int i = 0; i < kStatRows; ++i) acc[i] = o[static_cast<int64_t>(i) * hd];
  const bool with_sum = blockIdx.x == 0;
  double s = with_sum ? sum[h * hd + b] : 0.0;
  for (int r0 = 0; r0 < rows; r0 += kStatTile) {
    const int nr = min(kStatTile, rows - r0);
    __syncthreads();  // the previous tile is consumed
    for (int t = threadIdx.x; t < nr * hd; t += blockDim.x) {
      tile[t] = q[(static_cast<int64_t>(r0 + t / hd) * hq + h) * hd + t % hd];
    }
    __syncthreads();
    for (int r = 0; r < nr; ++r) {
      const float* qr = tile + r * hd;
      const double qb = qr[b];
      s += qb;
#pragma unroll
      for (int i = 0; i < kStatRows; ++i) acc[i] += static_cast<double>(qr[a0 + i]) * qb;
    }
  }
#pragma unroll
  for (int i = 0; i < kStatRows; ++i) o[static_cast<int64_t>(i) * hd] = acc[i];
  if (with_sum) sum[h * hd + b] = s;
}

}  // namespace

cudaError_t LaunchKvGatherLayer(const KvDeviceView& kv, int seq, int layer, int max_len,
                                float* k_out, float* v_out, int32_t* pos_out,
                                cudaStream_t stream) {
  if (max_len <= 0) return cudaSuccess;
  const dim3 grid((max_len + kRowsPerBlock - 1) / kRowsPerBlock, kv.num_kv_heads);
  if (kv.dtype == KvDType::kBF16) {
    KvGatherLayerKernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(kv, seq, layer, max_len,
                                                                      k_out, v_out, pos_out);
  } else {
    KvGatherLayerKernel<float><<<grid, kThreads, 0, stream>>>(kv, seq, layer, max_len, k_out,
                                                              v_out, pos_out);
  }
  return cudaGetLastError();
}

size_t KvCompactScratchBytes(const KvDeviceView& kv, int max_kept) {
  const size_t row = 2 * static_cast<size_t>(kv.head_dim) * KvDTypeSize(kv.dtype);
  return static_cast<size_t>(max_kept) * kv.num_kv_heads * (row + sizeof(int32_t));
}

cudaError_t LaunchKvCompactLayer(const KvDeviceView& kv, int seq, int layer, const int32_t* kept,
                                 const int32_t* offsets, int max_kept, void* scratch,
                                 cudaStream_t stream) {
  const int row_bytes = kv.head_dim * KvDTypeSize(kv.dtype);
  if (row_bytes % 16 != 0) return cudaErrorInvalidValue;
  const int pieces = row_bytes / 16;
  // Scratch: [max_kept * Hkv, 2, pieces] 16-byte pieces (row offsets[h] + i
  // of head h; offsets[Hkv] <= max_kept * Hkv), then the rows' positions.
  const int64_t rows_bound = static_cast<int64_t>(max_kept) * kv.num_kv_heads;
  uint4* scratch_kv = static_cast<uint4*>(scratch);
  int32_t* scratch_pos = reinterpret_cast<int32_t*>(scratch_kv + rows_bound * 2 * pieces);
  const dim3 grid(max_kept > 0 ? (max_kept + kRowsPerBlock - 1) / kRowsPerBlock : 1,
                  kv.num_kv_heads);
  KvCompactKernel<true><<<grid, kThreads, 0, stream>>>(kv, seq, layer, kept, offsets, pieces,
                                                       scratch_kv, scratch_pos);
  cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  KvCompactKernel<false><<<grid, kThreads, 0, stream>>>(kv, seq, layer, kept, offsets, pieces,
                                                        scratch_kv, scratch_pos);
  return cudaGetLastError();
}

cudaError_t LaunchQueryStats(const float* q, int rows, int num_q_heads, int head_dim, double* sum,
                             double* outer, cudaStream_t stream) {
  if (rows <= 0) return cudaSuccess;
  if (head_dim % kStatRows != 0 || head_dim > 256 || head_dim <= 0) return cudaErrorInvalidValue;
  const dim3 grid(head_dim / kStatRows, num_q_heads);
  const size_t smem = static_cast<size_t>(kStatTile) * head_dim * sizeof(float);
  QueryStatsKernel<<<grid, head_dim, smem, stream>>>(q, rows, num_q_heads, sum, outer);
  return cudaGetLastError();
}

}  // namespace dms::cuda
