// DMS prefill attention on sm_90a (head_dim 128), software-pipelined inside
// each warpgroup: the softmax of key tile kt + 1 runs while the tensor cores
// do O += P V of tile kt (FlashAttention-3's intra-warpgroup overlap), with
// one block barrier a tile instead of two. Same blocks, walk and results as
// the FlashAttention-2 style kernel (attention_mma.cu with WgmmaCore); this
// one runs when asked for (AttnMmaCore::kWgmmaPipe, DMS_ATTN_CORE=wgmma_pipe)
// until it measures faster (docs/prefill-attention.md).
//
// Block: 128 query rows (32 tokens x 4 heads of a KV group) x KV head h, two
// warpgroups of 64 rows. Per warpgroup, iteration kt (pa holds P of tile kt,
// o is scaled for it):
//
//   wait own copies; fence.proxy.async; block barrier       V(kt), K(kt+1) and
//                                                           meta(kt+2) visible;
//                                                           K[kt&1], V[~kt&1] free
//   cp.async V(kt+1) -> V[~kt&1], K(kt+2) -> K[kt&1]        land by the next barrier
//   wgmma S = Q K(kt+1)^T -> s           commit group A
//   wgmma o += pa V(kt)                  commit group B     both in flight
//   warps 0-1: resolve tile kt+3's keys -> meta slot kt%3   global loads hidden
//   wait_group 1 (A done); mask, softmax of s -> pn, corr   overlaps B
//   wait_group 0 (B done); o *= corr; pa = pn
//
// Buffers: K and V double-buffered by tile parity (32 KB a pair), tile
// metadata (spans, bias, rows, votes) in 3 slots; ~101 KB of shared memory.
// One block a multiprocessor (registers, below). Skipped tiles (no query of the block
// sees a key) issue no copies and no MMAs.
#include <cfloat>
#include <climits>
#include <type_traits>

#include "kernels/attention.h"
#include "kernels/attention_mma_cores.cuh"
#include "kernels/attention_pipe.h"
#include "kernels/attention_softmax.cuh"
#include "kernels/attention_walk.cuh"
#include "kernels/device_util.cuh"

namespace dms::cuda {
namespace {

using namespace attn_mma;  // NOLINT: the kernels' own helper namespace
using bf16 = __nv_bfloat16;
using Layout = WgmmaCore<128>;  // Q / K / V tile layouts (128-byte swizzle)

constexpr int kHD = 128;
constexpr int kBN = kKeyTile;
constexpr int kRows = Layout::kRows;
constexpr int kThreads = Layout::kThreads;
constexpr int kSlots = 3;  // metadata of tiles kt + 1 (mask), kt + 2 (copies), kt + 3 (resolving)

// Q, K and V first, on 1024-byte boundaries (each size is a multiple of 1024).
struct PipeSmem {
  unsigned char q[Layout::kQBytes];
  unsigned char k[2][Layout::kTileBytes];
  unsigned char v[2][Layout::kTileBytes];
  const bf16* kptr[kSlots][kBN];
  const bf16* vptr[kSlots][kBN];
  int2 span[kSlots][kBN];  // KeyWalk's spans (x = position, INT_MAX: no key)
  float bias[kSlots][kBN];
  uint32_t vote[kSlots][2][3];  // per metadata warp: any, uniform, all ballots
};
constexpr size_t kSmemBytes = sizeof(PipeSmem) + 1024;

#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DMS_PIPE_DEVICE_CODE 1

// Registers an asynchronous wgmma reads or writes stay where they are (and
// are not read early) across the wait: the empty asm takes them as operands.
template <class T, int N, int M>
__device__ __forceinline__ void KeepOperands(T (&r)[N][M]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
#pragma unroll
    for (int e = 0; e < M; ++e) {
      if constexpr (std::is_same_v<T, float>) {
        asm volatile("" : "+f"(r[i][e])::"memory");
      } else {
        asm volatile("" : "+r"(r[i][e])::"memory");
      }
    }
  }
}

// S = Q K^T for the warpgroup's 64 rows; asynchronous, the caller commits.
__device__ __forceinline__ void IssueScores(float (&s)[kBN / 8][4], uint32_t q_rows, uint32_t k_tile) {
#pragma unroll
  for (int kc = 0; kc < kHD / 16; ++kc) {
    const uint32_t step = (kc % 4) * 32;
    WgmmaM64N64K16Ss(s, WgmmaDesc(q_rows + (kc / 4) * Layout::kQBlockBytes + step, 16, 1024),
                     WgmmaDesc(k_tile + (kc / 4) * Layout::kBlockBytes + step, 16, 1024), kc > 0);
  }
}

// o += P V over a 64-key V tile; asynchronous, the caller commits.
__device__ __forceinline__ void IssuePv(float (&o)[kHD / 8][4], const uint32_t (&pa)[4][4],
                                        uint32_t v_tile) {
#pragma unroll
  for (int kc = 0; kc < kBN / 16; ++kc) {
    WgmmaM64N128K16(o, pa[kc], WgmmaDesc(v_tile + kc * 16 * 128, Layout::kBlockBytes, 1024));
  }
}
#endif

// grid: (tiles, Hkv), block: 256, dynamic shared memory: kSmemBytes. One
// block a multiprocessor: O, S and two P buffers live at once take ~200
// registers a thread (at two blocks' 128, ptxas spills and serializes the
// wgmma: C7512).
__global__ void __launch_bounds__(kThreads, 1) DmsAttentionPipeKernel(AttentionParams p) {
#if defined(DMS_PIPE_DEVICE_CODE)
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t pad = (1024 - (SmemAddr(smem_raw) & 1023)) & 1023;
  PipeSmem& sm = *reinterpret_cast<PipeSmem*>(smem_raw + pad);

  const AttnTile tile = p.tiles[blockIdx.x];
  const int h = blockIdx.y;
  const KeyWalk<kHD> walk(p, tile, h);
  const StepChunk& c = walk.c;
  const int hq = p.num_q_heads, g = hq / p.kv.num_kv_heads, tq = kRows / g;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int quad = lane >> 2, qlane = lane & 3;
  const int n = walk.NumTiles(kBN);

  int qpos[2];
  int64_t qrow[2];
  ThreadQueryRows(tile, c, h, g, hq, tq, warp * 16, quad, qpos, qrow);

  // Q -> the swizzled bf16 tile: thread t moves elements [d, d + 8) of rows
  // t / 16 + 16 i (row r: head r / tq, token r % tq; zeros past the tile).
  {
    const int d = (tid & 15) * 8;
#pragma unroll
    for (int i = 0; i < kRows / 16; ++i) {
      const int row = i * 16 + (tid >> 4), tok = row % tq, hg = row / tq;
      uint4 packed = make_uint4(0, 0, 0, 0);
      if (hg < g && tok < tile.q_count) {
        const int64_t at =
            ((static_cast<int64_t>(c.row_base) + tile.q_begin + tok) * hq + h * g + hg) * kHD + d;
        if (p.q_bf16 != nullptr) {
          packed = *reinterpret_cast<const uint4*>(p.q_bf16 + at);
        } else {
          const float4 a = *reinterpret_cast<const float4*>(p.q + at);
          const float4 b = *reinterpret_cast<const float4*>(p.q + at + 4);
          packed = make_uint4(PackBf16(a.x, a.y), PackBf16(a.z, a.w), PackBf16(b.x, b.y),
                              PackBf16(b.z, b.w));
        }
      }
      *reinterpret_cast<uint4*>(sm.q + Layout::QOffset(row, d)) = packed;
    }
  }

  // Resolves key tile kt into metadata slot sl (threads 0..63, one key each,
  // and their two warps' votes); read after a barrier.
  auto prepare = [&](int kt, int sl) {
    if (tid < kBN) {
      const ResolvedKey r = walk.Resolve(kt * kBN + tid);
      sm.span[sl][tid] = r.span;
      sm.kptr[sl][tid] = r.kp;
      sm.vptr[sl][tid] = r.vp;
      sm.bias[sl][tid] = r.all ? 0.0f : -INFINITY;
      const uint32_t v_any = __ballot_sync(0xffffffffu, r.any);
      const uint32_t v_uniform = __ballot_sync(0xffffffffu, r.all || r.none);
      const uint32_t v_all = __ballot_sync(0xffffffffu, r.all);
      if (lane == 0) {
        sm.vote[sl][warp][0] = v_any;
        sm.vote[sl][warp][1] = v_uniform;
        sm.vote[sl][warp][2] = v_all;
      }
    }
  };
  auto mode_of = [&](int kt) {
    return kt < n ? TileModeOf(sm.vote[kt % kSlots][0], sm.vote[kt % kSlots][1]) : kSkip;
  };
  // Tile kt's K or V rows into dst (zero-filled where there is no key):
  // thread t moves the 16-byte piece d of keys t / 16 + 16 k.
  auto copy = [&](unsigned char* dst, int kt, bool is_v) {
    const int sl = kt % kSlots, d = (tid & 15) * 8;
#pragma unroll
    for (int key = tid >> 4; key < kBN; key += kThreads / 16) {
      const bool ok = sm.span[sl][key].x != INT_MAX;
      CpAsync16(dst + Layout::Offset(key, d), (is_v ? sm.vptr[sl][key] : sm.kptr[sl][key]) + d, ok);
    }
  };

  const uint32_t q_rows = SmemAddr(sm.q) + (warp / 4) * 64 * 128;
  const float scale_log2 = 1.4426950408889634f / sqrtf(static_cast<float>(kHD));
  float o[kHD / 8][4];
#pragma unroll
  for (int dt = 0; dt < kHD / 8; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  float s[kBN / 8][4];
  uint32_t pa[kBN / 16][4], pn[kBN / 16][4];

  // The MMAs are issued whatever the tile's mode (ptxas serializes wgmma
  // issued on some paths only, C7515): a skipped tile's S is not read, and
  // its P is 0. V buffers start zeroed so that 0 * V is 0 before any copy.
  {
    const uint4 zero = make_uint4(0, 0, 0, 0);
    for (int i = tid; i < 2 * Layout::kTileBytes / 16; i += kThreads) {
      reinterpret_cast<uint4*>(sm.v[0])[i] = zero;
    }
  }
  auto clear_p = [](uint32_t(&pr)[kBN / 16][4]) {
#pragma unroll
    for (int i = 0; i < kBN / 16; ++i) pr[i][0] = pr[i][1] = pr[i][2] = pr[i][3] = 0;
  };

  // Prologue: metadata of tiles 0..2; K(0), V(0), K(1); P of tile 0.
  for (int j = 0; j < kSlots && j < n; ++j) prepare(j, j);
  Layout::TileLanded();  // Q and the zeroed V were stored through the generic proxy
  __syncthreads();
  const int mode0 = mode_of(0);
  if (mode0 != kSkip) {
    copy(sm.k[0], 0, false);
    copy(sm.v[0], 0, true);
  }
  if (mode_of(1) != kSkip) copy(sm.k[1], 1, false);
  CpAsyncCommit();
  CpAsyncWait<0>();
  Layout::TileLanded();
  __syncthreads();
  WgmmaFence();
  IssueScores(s, q_rows, SmemAddr(sm.k[0]));
  WgmmaCommitAndWait();
  KeepOperands(s);
  if (mode0 != kSkip) {
    MaskScores(s, mode0, sm.span[0], sm.bias[0], qpos, qlane);
    SoftmaxRow(s, 0, m, l, pa, scale_log2);  // o is 0: nothing to rescale
    SoftmaxRow(s, 1, m, l, pa, scale_log2);
  } else {
    clear_p(pa);
  }

  // Tiles kt and kt + 1 (kt + 1 < n): pc holds P of tile kt, pnx receives
  // P of tile kt + 1. The two P buffers swap roles every tile (the loop
  // below is unrolled by two) instead of being copied: a copy lets ptxas
  // give them one set of registers, which the softmax would then rewrite
  // under the in-flight O += P V (it serializes the wgmma then, C7513).
  auto step = [&](int kt, uint32_t(&pc)[kBN / 16][4], uint32_t(&pnx)[kBN / 16][4]) {
    CpAsyncWait<0>();
    Layout::TileLanded();
    __syncthreads();
    const int mode1 = mode_of(kt + 1), mode2 = mode_of(kt + 2);
    if (mode1 != kSkip) copy(sm.v[(kt + 1) & 1], kt + 1, true);
    if (mode2 != kSkip) copy(sm.k[kt & 1], kt + 2, false);
    CpAsyncCommit();

    WgmmaFence();
    IssueScores(s, q_rows, SmemAddr(sm.k[(kt + 1) & 1]));
    WgmmaCommit();
    IssuePv(o, pc, SmemAddr(sm.v[kt & 1]));
    WgmmaCommit();
    if (kt + kSlots < n) prepare(kt + kSlots, kt % kSlots);

    WgmmaWaitN<1>();
    KeepOperands(s);
    float corr[2] = {1.0f, 1.0f};
    if (mode1 != kSkip) {
      const int sl = (kt + 1) % kSlots;
      MaskScores(s, mode1, sm.span[sl], sm.bias[sl], qpos, qlane);
      corr[0] = SoftmaxRow(s, 0, m, l, pnx, scale_log2);
      corr[1] = SoftmaxRow(s, 1, m, l, pnx, scale_log2);
    } else {
      clear_p(pnx);
    }
    WgmmaWaitN<0>();
    KeepOperands(o);
    KeepOperands(pc);
    RescaleRow<kHD>(o, 0, corr[0]);
    RescaleRow<kHD>(o, 1, corr[1]);
  };
  // The last tile's O += P V.
  auto last = [&](uint32_t(&pc)[kBN / 16][4]) {
    CpAsyncWait<0>();
    Layout::TileLanded();
    __syncthreads();
    WgmmaFence();
    IssuePv(o, pc, SmemAddr(sm.v[(n - 1) & 1]));
    WgmmaCommitAndWait();
    KeepOperands(o);
  };
  int kt = 0;
  for (; kt + 2 < n; kt += 2) {
    step(kt, pa, pn);
    step(kt + 1, pn, pa);
  }
  if (kt + 1 < n) {
    step(kt, pa, pn);
    last(pn);
  } else {
    last(pa);
  }

  StoreAttentionRows<kHD>(p, o, l, qpos, qrow, qlane);
#else
  __trap();
#endif
}

}  // namespace

cudaError_t LaunchDmsAttentionPipe(const AttentionParams& p, cudaStream_t stream) {
  if (p.num_tiles <= 0) return cudaSuccess;
  const int hkv = p.kv.num_kv_heads;
  if (hkv <= 0 || p.num_q_heads % hkv != 0 || p.num_splits != 1 || p.kv.head_dim != kHD ||
      p.kv.dtype != KvDType::kBF16 || p.num_q_heads / hkv > kRows) {
    return cudaErrorInvalidValue;
  }
  static const cudaError_t attr = cudaFuncSetAttribute(
      DmsAttentionPipeKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
  if (attr != cudaSuccess) return attr;
  const dim3 grid(p.num_tiles, hkv);
  DmsAttentionPipeKernel<<<grid, kThreads, kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace dms::cuda
