// DMS prefill attention on tensor cores (attention.h): FlashAttention-2
// style, with the DMS visibility rule applied per (query, key) element, and
// sparse: chunk keys older than every query's window are read from the list
// of unmarked keys (LaunchDmsKeptKeys), so marked ones cost nothing.
//
// Block: Core::kRows query rows (64 on mma.sync, 128 on wgmma) = tq tokens
// x g heads of one KV group (row r: head r / tq, token r % tq), so one pass
// over K/V serves the whole group. Warp w owns rows [16w, 16w + 16). Keys
// are walked in tiles of kBN = 64: the head's cached slots [0, len) through
// the page table, then the chunk's own keys. Per tile:
//   meta  threads 0..63 each resolve one key of the NEXT tile (position,
//         source rows, the query range that sees it; key kk: cached slot
//         kk < len, then the gathered unmarked old chunk keys, then the
//         chunk keys from the window's start on); their two warps' votes
//         say whether any query of the block sees a key of the tile (else
//         it is skipped: exact, it would add exp(-inf) = 0), whether each
//         key is seen by all queries or by none (then the mask is a per-key
//         bias: the common case of old keys, outside every query's window,
//         visible iff unmarked) and whether every query sees every key;
//   load  K and V rows by cp.async into a double buffer (a missing key
//         copies a real row, masked), the next tile's copies in flight
//         during this one's math;
//   math  S = Q K^T (bf16 in, fp32 accumulate), mask, online softmax in fp32
//         (base 2), P rounded to bf16, O += P V. The softmax first weighs
//         the tile against the rows' running maxima as they are (no maxima
//         of the tile, no rescale of O); only where some weight could grow
//         large (a lane's sum past 2^40) or a row has no max yet does the
//         tile's MMA group compute S again and take the full online step.
// Two block barriers a tile (docs/prefill-attention.md has the walk).
// The two products and the tile layout come from a core
// (attention_mma_cores.cuh): wgmma on sm_90a, mma.sync elsewhere.
#include <cfloat>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "kernels/attention.h"
#include "kernels/attention_mma_cores.cuh"
#include "kernels/attention_softmax.cuh"
#include "kernels/attention_walk.cuh"
#include "kernels/attention_ws.h"
#include "kernels/device_util.cuh"

namespace dms::cuda {
namespace {

using attn_mma::CpAsync16;
using attn_mma::CpAsyncCommit;
using attn_mma::CpAsyncWait;
using attn_mma::KeyWalk;
using attn_mma::MmaSyncCore;
using attn_mma::ResolvedKey;
using attn_mma::SmemAddr;
using attn_mma::WgmmaCore;
using attn_mma::kSkip;

constexpr int kBN = attn_mma::kKeyTile;
constexpr float kLog2e = 1.4426950408889634f;

using bf16 = __nv_bfloat16;

// Q, K and V tiles first: the wgmma core needs them on 1024-byte boundaries
// (the kernel aligns the base; each of their sizes is a multiple of 1024
// there).
template <class Core>
struct MmaSmem {
  unsigned char q[Core::kQBytes];
  unsigned char k[2][Core::kTileBytes];
  unsigned char v[2][Core::kTileBytes];
  // The keys' K and V rows, side by side: issue() reads both in one
  // 16-byte load.
  struct alignas(16) RowPair {
    const bf16* k;
    const bf16* v;
  };
  RowPair rows[2][kBN];
  // Key visibility as a range of query positions: key seen by query i iff
  // span.x <= i <= span.y (x: the key's position, INT_MAX when there is no
  // key; y: x + W for a marked key, INT_MAX otherwise). One compare pair per
  // element in the mask.
  int2 span[2][kBN];
  float bias[2][kBN];   // 0 or -inf: the key's visibility when it is row-independent
  uint32_t vote[2];  // per meta buffer: byte w, metadata warp w's WarpVoteBits
};
static_assert(kBN == 64, "tile metadata is resolved by exactly two warps");

// A pair of q elements as a bf16 pair: already one, or two f32 rounded.
__device__ __forceinline__ uint32_t Bf16Pair(uint32_t v) { return v; }
__device__ __forceinline__ uint32_t Bf16Pair(float2 v) { return PackBf16(v.x, v.y); }

// grid: (tiles, Hkv), block: kThreads, dynamic shared memory:
// SmemBytes<Core>(). kMinBlocks: blocks per multiprocessor the register
// budget is cut for (mma.sync at HD 128: 2 or 3, the default; 3 spills a few
// bytes and is the faster, docs/prefill-attention.md).
template <int HD, int kMinBlocks, class Core>
__global__ void __launch_bounds__(Core::kThreads, kMinBlocks)
    DmsAttentionMmaKernel(AttentionParams p) {
  constexpr int kBM = Core::kRows;
  constexpr int kThreads = Core::kThreads;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t pad = (Core::kAlign - (SmemAddr(smem_raw) & (Core::kAlign - 1))) & (Core::kAlign - 1);
  MmaSmem<Core>& sm = *reinterpret_cast<MmaSmem<Core>*>(smem_raw + pad);

  const AttnTile tile = p.tiles[blockIdx.x];
  const int h = blockIdx.y;
  const KeyWalk<HD> walk(p, tile, h);
  const StepChunk& c = walk.c;
  const int hq = p.num_q_heads, hkv = p.kv.num_kv_heads, g = hq / hkv;
  const int tq = kBM / g;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int quad = lane >> 2, qlane = lane & 3;  // mma fragment row / column group
  const int num_key_tiles = walk.NumTiles(kBN);

  int qpos[2];
  int64_t qrow[2];
  attn_mma::ThreadQueryRows(tile, c, h, g, hq, tq, warp * 16, quad, qpos, qrow);

  // Q (once per block), bf16 or f32 rounded to bf16, as A fragments (a0 row
  // quad, k 2q..2q+1; a1 row quad+8; a2/a3 the same at k + 8) in registers,
  // or the same values into the core's Q tile. Every load is issued before
  // the first is used: Nsight's source view had the stores of the earlier
  // version (a branch around each load) waiting on one load after another,
  // 14% of the kernel's warp stall samples at 16K.
  uint32_t qf[Core::kQFrags][4];
  uint32_t qv[HD / 16][2][2];  // [kc][hh][half]
  // This thread's pairs of a row start at q0 (a padding row reads row 0's,
  // unconditionally, so that the loads need no branch, and drops them).
  const int64_t q0[2] = {(qpos[0] >= 0 ? qrow[0] * HD : 0) + 2 * qlane,
                         (qpos[1] >= 0 ? qrow[1] * HD : 0) + 2 * qlane};
  // q (bf16 or f32 elements from base) read as Pair (uint32_t: a bf16 pair,
  // float2: an f32 pair), each rounded to a bf16 pair.
  auto gather_q = [&](auto base, auto pair_tag) {
    using Pair = decltype(pair_tag);
#pragma unroll
    for (int kc = 0; kc < HD / 16; ++kc) {
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const Pair v = __ldg(reinterpret_cast<const Pair*>(base + q0[hh]) + kc * 8 + half * 4);
          qv[kc][hh][half] = qpos[hh] >= 0 ? Bf16Pair(v) : 0u;
        }
      }
    }
  };
  if (p.q_bf16 != nullptr) {
    gather_q(p.q_bf16, uint32_t{});
  } else {
    gather_q(p.q, float2{});
  }
#pragma unroll
  for (int kc = 0; kc < HD / 16; ++kc) {
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        if constexpr (Core::kQInSmem) {
          const int row = warp * 16 + quad + 8 * hh, d = kc * 16 + half * 8 + 2 * qlane;
          *reinterpret_cast<uint32_t*>(sm.q + Core::QOffset(row, d)) = qv[kc][hh][half];
        } else {
          qf[kc][hh + 2 * half] = qv[kc][hh][half];
        }
      }
    }
  }

  // The walk's loads, issued ahead by threads 0..63 so that their latency
  // hides under a tile's math instead of holding everyone at the barrier
  // after prepare(): pre1, tile pre1_tile's first loads (KeyWalk::Prefetch,
  // two tiles ahead), pre2, tile pre2_tile's first and second ones
  // (Prefetch2, a tile ahead). The block starts with the first three tiles'
  // issued together (pre0: tile 0's two): else tile 1's chain, with nothing
  // prefetched, would hold the block at the first tile's barrier.
  int pre1 = 0, pre1_tile = 2, pre2_tile = 1;
  int2 pre0 = make_int2(0, 0), pre2 = make_int2(0, 0);
  if (tid < kBN) {
    const int first0 = walk.Prefetch(tid), first1 = walk.Prefetch(kBN + tid);
    pre1 = walk.Prefetch(2 * kBN + tid);
    pre0 = walk.Prefetch2(tid, first0);
    pre2 = walk.Prefetch2(kBN + tid, first1);
  }
  // Tile kt's loads as the loop prefetched them, or issued now.
  auto from_walk = [&](int kt) {
    const int kk = kt * kBN + tid;
    return kt == pre2_tile ? pre2 : walk.Prefetch2(kk, kt == pre1_tile ? pre1 : walk.Prefetch(kk));
  };
  // Resolves key tile kt into meta buffer st (threads 0..63, one key each,
  // and their two warps' votes), pre(kt) giving its loads. No barrier:
  // mode_of(st) reads the result after one.
  auto prepare = [&](int kt, int st, auto pre) {
    if (tid < kBN) {
      const int kk = kt * kBN + tid;
      const ResolvedKey r = walk.Resolve(kk, pre(kt));
      sm.span[st][tid] = r.span;
      sm.rows[st][tid] = {r.kp, r.vp};
      sm.bias[st][tid] = r.all ? 0.0f : -INFINITY;
      const uint32_t bits = attn_mma::WarpVoteBits(r.any, r.all || r.none, r.all);
      if (lane == 0) reinterpret_cast<uint8_t*>(&sm.vote[st])[warp] = static_cast<uint8_t>(bits);
    }
  };
  // After a barrier that follows prepare(.., st): kSkip (no query of the
  // block sees any key of the tile), kMask (mask per element), kBias (each
  // key is seen by every query or by none) or kFull (all see all).
  auto mode_of = [&](int st) -> int { return attn_mma::TileModeOfBits(sm.vote[st]); };

  // K/V tile copies: thread tid always moves the 16-byte piece copy_d of
  // keys copy_key + i * kKeyStep (i < kCopies). Those keys share key % 8
  // (the swizzle's phase), so piece i's offset in a tile is copy_off + i *
  // kKeyStep * kRowPitch: computed once, an immediate in each copy.
  // A missing key (past the walk's keys) copies the chunk's first K/V rows
  // (KeyWalk points it there) instead of zeros: it is masked, so its score
  // is -inf and its weight exactly 0 on finite values, and the copy needs no
  // test.
  constexpr int kPieces = HD / 8;  // 16-byte pieces per row
  constexpr int kKeyStep = kThreads / kPieces;
  constexpr int kCopies = kBN / kKeyStep;
  static_assert(kThreads % kPieces == 0 && kKeyStep % 8 == 0 && kBN % kKeyStep == 0);
  const int copy_d = (tid % kPieces) * 8, copy_key = tid / kPieces;
  const uint32_t copy_off = Core::Offset(copy_key, copy_d);
  auto issue = [&](int st) {
    const uint32_t k_dst = SmemAddr(sm.k[st]) + copy_off, v_dst = SmemAddr(sm.v[st]) + copy_off;
    // Pairs read two at a time before their copies: two shared-load
    // latencies a tile, not kCopies (Nsight put 6% of the stall samples on
    // the adds waiting for them one at a time; all at once spilled).
    static_assert(kCopies % 2 == 0);
#pragma unroll
    for (int i = 0; i < kCopies; i += 2) {
      const typename MmaSmem<Core>::RowPair a = sm.rows[st][copy_key + i * kKeyStep];
      const typename MmaSmem<Core>::RowPair b = sm.rows[st][copy_key + (i + 1) * kKeyStep];
      CpAsync16(k_dst + i * kKeyStep * Core::kRowPitch, a.k + copy_d);
      CpAsync16(v_dst + i * kKeyStep * Core::kRowPitch, a.v + copy_d);
      CpAsync16(k_dst + (i + 1) * kKeyStep * Core::kRowPitch, b.k + copy_d);
      CpAsync16(v_dst + (i + 1) * kKeyStep * Core::kRowPitch, b.v + copy_d);
    }
  };

  float o[HD / 8][4];
#pragma unroll
  for (int dt = 0; dt < HD / 8; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
  // A padding row starts at a finite max (TrySoftmaxAtRunningMax).
  float m[2] = {qpos[0] < 0 ? 0.0f : -INFINITY, qpos[1] < 0 ? 0.0f : -INFINITY};
  float l[2] = {0.0f, 0.0f};
  const float scale_log2 = kLog2e / sqrtf(static_cast<float>(HD));

  uint32_t pa[kBN / 16][4];  // P as A fragments; read by an in-flight O += P V until Drain
  auto compute = [&](int st, int mode) {
    // The softmax at the running max (TrySoftmaxAtRunningMax) first; in the
    // rare tile where it does not hold (a row's first visible tile, or a
    // max far above the running one), the scores again and the softmax
    // with the maxima. One loop, so that the scores' wgmma has one call
    // site (a second one spilled: ptxas kept both sites' registers).
    bool at_running_max = true;
#pragma unroll 1
    for (;;) {
      // S = Q K^T: 16 rows x 64 keys per warp, n-tiles of 8 keys.
      float s[kBN / 8][4];
      Core::Scores(s, qf, SmemAddr(sm.q), SmemAddr(sm.k[st]), lane, warp);
      // Scores stay unscaled: the softmax folds the base-2 scale into its
      // exponent's FMA.
      attn_mma::MaskScores(s, mode, sm.span[st], sm.bias[st], qpos, qlane);
      if (at_running_max) {
        if (attn_mma::TrySoftmaxAtRunningMax(
                s, m, l, pa, scale_log2, [&](bool p) { return Core::AnyInMmaGroup(p, warp); })) {
          break;
        }
        at_running_max = false;
        continue;
      }
      attn_mma::OnlineSoftmax<HD>(s, m, l, pa, scale_log2, o);
      break;
    }
    Core::AccumulatePv(o, pa, SmemAddr(sm.v[st]), lane);
  };

  // Double-buffered walk over the relevant key tiles. (A Q tile in shared
  // memory is published by the first tile's fence and barrier below: there
  // is always one, every query sees itself.)
  // Two block barriers a tile: one publishes tile kt's K/V and the next
  // tile's metadata, one frees tile kt's buffers. (Skipped tiles, rare in
  // the sparse walk, cost two more each.)
  int st = 0, kt = 0, mode = kSkip;
  for (; kt < num_key_tiles; ++kt) {
    prepare(kt, st, [&](int t) { return t == 0 ? pre0 : from_walk(t); });
    __syncthreads();
    mode = mode_of(st);
    if (mode != kSkip) break;
    __syncthreads();  // votes read before they are rewritten
  }
  if (kt < num_key_tiles) issue(st);
  CpAsyncCommit();
  while (kt < num_key_tiles) {
    int nkt = kt + 1, nmode = kSkip;
    if (nkt < num_key_tiles) prepare(nkt, st ^ 1, from_walk);
    // The previous tile's O += P V read buffers st ^ 1: every warpgroup's
    // must be done before the barrier that lets any thread refill them.
    Core::Drain(o, pa);
    CpAsyncWait<0>();  // tile kt has landed (this thread's copies)
    Core::TileLanded();
    __syncthreads();   // ... and everyone's, with the next tile's metadata
    if (nkt < num_key_tiles) {
      nmode = mode_of(st ^ 1);
      while (nmode == kSkip && ++nkt < num_key_tiles) {
        __syncthreads();  // votes read before they are rewritten
        prepare(nkt, st ^ 1, from_walk);
        __syncthreads();
        nmode = mode_of(st ^ 1);
      }
    }
    if (nkt < num_key_tiles) issue(st ^ 1);
    CpAsyncCommit();
    if (tid < kBN) {
      const int kk = (nkt + 1) * kBN + tid;
      if (nkt + 1 < num_key_tiles) {
        pre2 = walk.Prefetch2(kk, nkt + 1 == pre1_tile ? pre1 : walk.Prefetch(kk));
      }
      if (nkt + 2 < num_key_tiles) pre1 = walk.Prefetch(kk + kBN);
    }
    pre2_tile = nkt + 1;
    pre1_tile = nkt + 2;
    compute(st, mode);
    __syncthreads();   // buffers st are free for the tile after next
    st ^= 1;
    kt = nkt;
    mode = nmode;
  }
  CpAsyncWait<0>();
  Core::Drain(o, pa);

  attn_mma::StoreAttentionRows<HD>(p, o, l, qpos, qrow, qlane);
}

int g_min_blocks = 3;
AttnMmaCore g_core = AttnMmaCore::kAuto;

template <class Core>
constexpr size_t SmemBytes() {
  return sizeof(MmaSmem<Core>) + (Core::kAlign > 16 ? Core::kAlign : 0);
}

template <int HD, int kMinBlocks, class Core>
cudaError_t LaunchMma(const AttentionParams& p, cudaStream_t stream) {
  constexpr size_t kSmem = SmemBytes<Core>();
  static const cudaError_t attr = cudaFuncSetAttribute(
      DmsAttentionMmaKernel<HD, kMinBlocks, Core>, cudaFuncAttributeMaxDynamicSharedMemorySize,
      kSmem);
  if (attr != cudaSuccess) return attr;
  const dim3 grid(p.num_tiles, p.kv.num_kv_heads);
  DmsAttentionMmaKernel<HD, kMinBlocks, Core><<<grid, Core::kThreads, kSmem, stream>>>(p);
  return cudaGetLastError();
}

// wgmma needs an sm_90 device and sm_90a code for it in this binary (a
// build for other architectures only has the trapping stub).
bool WgmmaRunsHere() {
  static const bool ok = [] {
    int dev = 0, major = 0, minor = 0;
    cudaFuncAttributes fa{};
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) != cudaSuccess ||
        cudaFuncGetAttributes(&fa, DmsAttentionMmaKernel<128, 2, WgmmaCore<128>>) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return major == 9 && minor == 0 && fa.binaryVersion == 90;
  }();
  return ok;
}

// kAuto: wgmma where it runs (head_dim 128).
bool UseWgmma(int head_dim) {
  if (g_core == AttnMmaCore::kMmaSync || head_dim != 128) return false;
  if (g_core == AttnMmaCore::kWgmma || g_core == AttnMmaCore::kWgmmaWs) return true;
  return WgmmaRunsHere();
}

// Of the wgmma kernels, kAuto takes the FlashAttention-2 style one (the
// faster today: docs/prefill-attention.md).
bool UseWarpSpecialized() { return g_core == AttnMmaCore::kWgmmaWs; }

// wgmma: 2 blocks of 256 threads per multiprocessor (128 registers each;
// one block at more registers is slower: docs/prefill-attention.md).
cudaError_t LaunchWgmma(const AttentionParams& p, cudaStream_t stream) {
  return LaunchMma<128, 2, WgmmaCore<128>>(p, stream);
}

template <int HD>
cudaError_t LaunchMmaSync(const AttentionParams& p, cudaStream_t stream) {
  return g_min_blocks == 3 ? LaunchMma<HD, 3, MmaSyncCore<HD>>(p, stream)
                           : LaunchMma<HD, 2, MmaSyncCore<HD>>(p, stream);
}

}  // namespace

bool DmsAttentionMmaSupported(KvDType dtype, int head_dim, int group) {
  return dtype == KvDType::kBF16 && (head_dim == 64 || head_dim == 128) && group >= 1 &&
         group <= kAttnMmaRows;
}

cudaError_t LaunchDmsAttentionMma(const AttentionParams& p, cudaStream_t stream) {
  if (p.num_tiles <= 0) return cudaSuccess;
  const int hkv = p.kv.num_kv_heads;
  if (hkv <= 0 || p.num_q_heads % hkv != 0 || p.num_splits != 1 ||
      !DmsAttentionMmaSupported(p.kv.dtype, p.kv.head_dim, p.num_q_heads / hkv)) {
    return cudaErrorInvalidValue;
  }
  if (UseWgmma(p.kv.head_dim)) {
    if (!WgmmaRunsHere()) return cudaErrorInvalidDeviceFunction;
    return UseWarpSpecialized() ? LaunchDmsAttentionWs(p, stream) : LaunchWgmma(p, stream);
  }
  return p.kv.head_dim == 128 ? LaunchMmaSync<128>(p, stream) : LaunchMmaSync<64>(p, stream);
}

void SetDmsAttentionMmaMinBlocks(int blocks) { g_min_blocks = blocks == 3 ? 3 : 2; }

void SetDmsAttentionMmaCore(AttnMmaCore core) { g_core = core; }

bool DmsAttentionWgmmaAvailable() { return WgmmaRunsHere(); }

int DmsAttentionMmaRows(int head_dim) {
  return UseWgmma(head_dim) ? kAttnWgmmaRows : kAttnMmaRows;
}

}  // namespace dms::cuda
