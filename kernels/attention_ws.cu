// DMS prefill attention, warp-specialized (sm_90a, head_dim 128): the sparse
// DMS key walk of attention_mma.cu in FlashAttention-3's structure, with no
// block barrier in the key loop. Correct on every swept shape; not yet
// faster than the FlashAttention-2 style kernel (docs/prefill-attention.md
// has the measurements and what is missing), so it runs only when asked
// for (AttnMmaCore::kWgmmaWs, CudaTuning attention_core=wgmma_ws).
//
//   block = 3 warpgroups, one block a multiprocessor, persistent: work item i
//   = (query tile i / Hkv of 128 rows = 32 tokens x 4 heads, KV head i % Hkv);
//   block b takes items b, b + grid, ... (they grow with the tile index, so
//   every block gets the same mix).
//
//   producer (warpgroup 0):
//     per pair   128 threads resolve 128 keys (KeyWalk: position, K/V rows,
//     of tiles   span, votes); producer-only named barrier; per tile of 64:
//                wait empty[s]; spans, bias, mode -> meta[s]; cp.async the
//                K/V rows into stage s (zero-filled where there is no key;
//                none for a tile no query sees); arrive full[s] twice: once
//                for the stores, once when the copies land
//                (cp.async.mbarrier.arrive.noinc), so nobody waits for them.
//                Alongside, the next item's Q (f32 -> bf16, 128-byte
//                swizzle) in 8 slices, published on q_full[b] with the
//                item's tile count (b = item & 1).
//   consumers (warpgroups 1, 2; 64 rows each), per tile: wait full[s] and
//                fence.proxy.async (cp.async wrote in the generic proxy, the
//                wgmma reads in the async one); mask and online softmax of
//                this tile; then, in the warpgroup's turn (named barriers,
//                FlashAttention-3's ping-pong), O += P V of this tile and
//                S = Q K^T of the next; wait; arrive empty[s].
//     per item   arrive q_empty[b]; O / l -> output.
//
// Barrier counts: full 256 (two arrivals per producer thread), empty 256
// (consumer threads), q_full 128, q_empty 256. Phases: the n-th use of a
// stage waits parity n & 1 (consumers on full) and (n & 1) ^ 1 (producer on
// empty: the first use passes at once).
//
// Not here (FlashAttention-3 has it): the softmax of a tile overlapping that
// warpgroup's own O += P V (overlapping S of the next tile with P V of this
// one was tried and was slower: docs/prefill-attention.md).
#include <cfloat>
#include <climits>

#include "kernels/attention.h"
#include "kernels/attention_mma_cores.cuh"
#include "kernels/attention_softmax.cuh"
#include "kernels/attention_walk.cuh"
#include "kernels/attention_ws.h"
#include "kernels/device_util.cuh"

namespace dms::cuda {
namespace {

using namespace attn_mma;  // NOLINT: the kernel's own helper namespace
using bf16 = __nv_bfloat16;
using Layout = WgmmaCore<128>;  // Q / K / V tile layouts (128-byte swizzle)

constexpr int kHD = 128;
constexpr int kBN = kKeyTile;
constexpr int kRows = Layout::kRows;  // 128 query rows an item
constexpr int kStages = 4;
constexpr int kProducerThreads = 128;
constexpr int kConsumerThreads = 256;
constexpr int kThreads = kProducerThreads + kConsumerThreads;
static_assert(kStages >= 2);

struct StageMeta {
  int2 span[kBN];
  float bias[kBN];
  int mode;
  int pad[3];
};

// Q, K and V first, on 1024-byte boundaries (each size is a multiple of 1024).
struct WsSmem {
  unsigned char q[2][Layout::kQBytes];
  unsigned char k[kStages][Layout::kTileBytes];
  unsigned char v[kStages][Layout::kTileBytes];
  StageMeta meta[kStages];
  // Producer scratch: two tiles' keys, resolved together.
  const bf16* kptr[2 * kBN];
  const bf16* vptr[2 * kBN];
  int2 span[2 * kBN];
  float bias[2 * kBN];
  uint32_t vote[4][3];  // per producer warp: any, uniform, all ballots
  int q_tiles[2];       // key tiles of the item whose Q is in q[b]
  uint64_t full[kStages], empty[kStages], q_full[2], q_empty[2];
};
constexpr size_t kSmemBytes = sizeof(WsSmem) + 1024;

// The device code below is sm_90a only (mbarrier try_wait, wgmma);
// other architectures get a trapping kernel.
#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DMS_WS_DEVICE_CODE 1
__device__ __forceinline__ void MbarInit(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(SmemAddr(bar)), "r"(count)
               : "memory");
}
// Release: this thread's earlier shared-memory writes are seen by whoever
// waits on the phase it completes.
__device__ __forceinline__ void MbarArrive(uint64_t* bar) {
  asm volatile("{\n.reg .b64 state;\nmbarrier.arrive.shared::cta.b64 state, [%0];\n}\n" ::"r"(
                   SmemAddr(bar))
               : "memory");
}
// Arrives on the barrier once all of this thread's earlier cp.async copies
// have landed, without counting up the pending arrivals first (.noinc): the
// barrier's expected count includes this arrival.
__device__ __forceinline__ void CpAsyncArriveNoinc(uint64_t* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(SmemAddr(bar))
               : "memory");
}
__device__ __forceinline__ void MbarWait(uint64_t* bar, uint32_t parity) {
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
        "selp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(SmemAddr(bar)), "r"(parity)
        : "memory");
  } while (!done);
}
// The producer warpgroup's own barrier. Not bar.sync (= barrier.sync.aligned,
// which needs every warp converged): a producer warp reaches it straight
// from divergent mbarrier spin loops.
__device__ __forceinline__ void ProducerSync() {
  asm volatile("barrier.sync 1, 128;\n" ::: "memory");
}
// Generic-proxy writes (cp.async, st.shared) before async-proxy reads (wgmma).
__device__ __forceinline__ void ProxyFence() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// Registers an asynchronous wgmma reads or writes stay where they are (and
// are not read early) across the wait: the empty asm takes them as operands.
template <int N, int M>
__device__ __forceinline__ void FenceOperands(float (&r)[N][M]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
#pragma unroll
    for (int e = 0; e < M; ++e) asm volatile("" : "+f"(r[i][e])::"memory");
  }
}
template <int N, int M>
__device__ __forceinline__ void FenceOperands(uint32_t (&r)[N][M]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
#pragma unroll
    for (int e = 0; e < M; ++e) asm volatile("" : "+r"(r[i][e])::"memory");
  }
}

// ---- producer ----

struct Producer {
  const AttentionParams& p;
  WsSmem& sm;
  int t;  // 0..127
  int stage = 0;
  uint32_t phase = 0;

  // Q of an item, f32 -> bf16 into the swizzled tile, in kQSlices slices of
  // kRows / kQSlices rows. Thread t moves elements [d, d + 8) of rows
  // 8 i + t / 16. A slice's loads are issued (LoadQSlice) before the next
  // key pair's resolve loads and stored (StoreQSlice) after them, so the next
  // item's Q arrives in the shadow of this item's tiles.
  struct QItem {
    AttnTile tile;
    int64_t row0;  // q row of the item's first token, first head of the group
    int buf, slice;  // slice: the next one to load; kQSlices when done
    int num_tiles;   // the item's key tiles, published with its Q
  };
  static constexpr int kQSlices = 8;
  static constexpr int kQIters = kRows / 8 / kQSlices;

  __device__ __forceinline__ QItem StartQ(int item, int it) {
    const int hkv = p.kv.num_kv_heads, g = p.num_q_heads / hkv;
    QItem q;
    q.tile = p.tiles[item / hkv];
    const StepChunk c = p.chunks[q.tile.chunk];
    q.row0 = (static_cast<int64_t>(c.row_base) + q.tile.q_begin) * p.num_q_heads + (item % hkv) * g;
    q.buf = it & 1;
    q.slice = 0;
    q.num_tiles = KeyWalk<kHD>(p, q.tile, item % hkv).NumTiles(kBN);
    return q;
  }
  __device__ __forceinline__ void LoadQSlice(const QItem& q, float4 (&v)[kQIters][2]) const {
    const int hq = p.num_q_heads, g = hq / p.kv.num_kv_heads, tq = kRows / g;
    const int d = (t & 15) * 8;
#pragma unroll
    for (int i = 0; i < kQIters; ++i) {
      const int row = (q.slice * kQIters + i) * 8 + (t >> 4);
      const int tok = row % tq, hg = row / tq;
      v[i][0] = v[i][1] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (hg < g && tok < q.tile.q_count) {
        const int64_t at = (q.row0 + static_cast<int64_t>(tok) * hq + hg) * kHD + d;
        if (p.q_bf16 != nullptr) {  // already bf16: the 8 values' bits in v[i][0]
          const uint4 u = *reinterpret_cast<const uint4*>(p.q_bf16 + at);
          v[i][0] = make_float4(__uint_as_float(u.x), __uint_as_float(u.y), __uint_as_float(u.z),
                                __uint_as_float(u.w));
        } else {
          v[i][0] = *reinterpret_cast<const float4*>(p.q + at);
          v[i][1] = *reinterpret_cast<const float4*>(p.q + at + 4);
        }
      }
    }
  }
  // Stores the slice; the first waits until the consumers are done with the
  // buffer, the last publishes it.
  __device__ __forceinline__ void StoreQSlice(QItem& q, int it, const float4 (&v)[kQIters][2]) {
    if (q.slice == 0) MbarWait(&sm.q_empty[q.buf], ((it >> 1) & 1) ^ 1);
    const int d = (t & 15) * 8;
#pragma unroll
    for (int i = 0; i < kQIters; ++i) {
      const int row = (q.slice * kQIters + i) * 8 + (t >> 4);
      const float4 a = v[i][0], b = v[i][1];
      *reinterpret_cast<uint4*>(sm.q[q.buf] + Layout::QOffset(row, d)) =
          p.q_bf16 != nullptr
              ? make_uint4(__float_as_uint(a.x), __float_as_uint(a.y), __float_as_uint(a.z),
                           __float_as_uint(a.w))
              : make_uint4(PackBf16(a.x, a.y), PackBf16(a.z, a.w), PackBf16(b.x, b.y),
                           PackBf16(b.z, b.w));
    }
    if (++q.slice == kQSlices) {
      if (t == 0) sm.q_tiles[q.buf] = q.num_tiles;
      ProxyFence();
      MbarArrive(&sm.q_full[q.buf]);
    }
  }
  __device__ __forceinline__ void FinishQ(QItem& q, int it) {
    while (q.slice < kQSlices) {
      float4 v[kQIters][2];
      LoadQSlice(q, v);
      StoreQSlice(q, it, v);
    }
  }

  // Emits scratch tile j (0/1) into the next stage: spans, bias and mode by
  // stores, published by this thread's arrive; the K/V rows by cp.async,
  // whose landing the barrier tracks (cp.async.mbarrier.arrive.noinc: the
  // phase completes once every thread's copies landed, with no thread
  // waiting for them). A kSkip tile moves no rows.
  __device__ __forceinline__ void Emit(int j, int mode) {
    MbarWait(&sm.empty[stage], phase ^ 1);
    StageMeta& m = sm.meta[stage];
    if (t < kBN) {
      m.span[t] = sm.span[j * kBN + t];
    } else {
      m.bias[t - kBN] = sm.bias[j * kBN + t - kBN];
    }
    if (t == 0) m.mode = mode;
    if (mode != kSkip) {
      // Thread t moves the 16-byte piece d of keys t / 16 + 8 k.
      const int d = (t & 15) * 8;
#pragma unroll
      for (int key = t >> 4; key < kBN; key += kProducerThreads / 16) {
        const int src = j * kBN + key;
        const bool ok = sm.span[src].x != INT_MAX;
        const uint32_t off = Layout::Offset(key, d);
        CpAsync16(sm.k[stage] + off, sm.kptr[src] + d, ok);
        CpAsync16(sm.v[stage] + off, sm.vptr[src] + d, ok);
      }
    }
    CpAsyncArriveNoinc(&sm.full[stage]);
    MbarArrive(&sm.full[stage]);
    if (++stage == kStages) {
      stage = 0;
      phase ^= 1;
    }
  }

  __device__ __forceinline__ void Run(int num_items) {
    const int hkv = p.kv.num_kv_heads;
    const int lane = t & 31, warp = t >> 5;
    int it = 0;
    QItem qn;  // the Q being loaded: this item's first, then the next item's
    if (static_cast<int>(blockIdx.x) < num_items) {
      qn = StartQ(blockIdx.x, 0);
      FinishQ(qn, 0);
    }
    for (int item = blockIdx.x; item < num_items; item += gridDim.x, ++it) {
      const AttnTile tile = p.tiles[item / hkv];
      const int h = item % hkv;
      const KeyWalk<kHD> walk(p, tile, h);
      const int next = item + gridDim.x;
      if (next < num_items) qn = StartQ(next, it + 1);

      const int num_tiles = walk.NumTiles(kBN);
      // The pair's first loads (KeyWalk::Prefetch), issued a pair ahead so
      // that their latency hides under the emits of the pair before.
      int pre = walk.Prefetch(t);
      for (int kt0 = 0; kt0 < num_tiles; kt0 += 2) {
        const bool q_slice = next < num_items && qn.slice < kQSlices;
        float4 qv[kQIters][2];
        if (q_slice) LoadQSlice(qn, qv);
        const int kk = kt0 * kBN + t;  // past the keys: missing
        const ResolvedKey r = walk.Resolve(kk, walk.Prefetch2(kk, pre));
        if (kt0 + 2 < num_tiles) pre = walk.Prefetch((kt0 + 2) * kBN + t);
        sm.span[t] = r.span;
        sm.bias[t] = r.all ? 0.0f : -INFINITY;
        sm.kptr[t] = r.kp;
        sm.vptr[t] = r.vp;
        const uint32_t v_any = __ballot_sync(0xffffffffu, r.any);
        const uint32_t v_uniform = __ballot_sync(0xffffffffu, r.all || r.none);
        const uint32_t v_all = __ballot_sync(0xffffffffu, r.all);
        if (lane == 0) {
          sm.vote[warp][0] = v_any;
          sm.vote[warp][1] = v_uniform;
          sm.vote[warp][2] = v_all;
        }
        if (q_slice) StoreQSlice(qn, it + 1, qv);
        ProducerSync();
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          if (kt0 + j < num_tiles) Emit(j, TileModeOf(sm.vote[2 * j], sm.vote[2 * j + 1]));
        }
        ProducerSync();  // scratch read before the next pair rewrites it
      }
      if (next < num_items) FinishQ(qn, it + 1);
    }
  }
};

// ---- consumers ----

// O += P V over a 64-key V tile (MN-major B: 64-element column blocks
// kBlockBytes apart, 8-key groups 1024 bytes apart; k16 step kc starts 16
// rows further). Asynchronous; the caller commits.
__device__ __forceinline__ void IssuePv(float (&o)[kHD / 8][4], const uint32_t (&pa)[4][4],
                                        uint32_t v_tile) {
#pragma unroll
  for (int kc = 0; kc < kBN / 16; ++kc) {
    WgmmaM64N128K16(o, pa[kc], WgmmaDesc(v_tile + kc * 16 * 128, Layout::kBlockBytes, 1024));
  }
}

// S = Q K^T for the warpgroup's 64 rows (K-major B: 8-row groups 1024 bytes
// apart; k16 step kc starts 32 bytes further into the row, or in the next
// column block). Asynchronous; the caller commits.
__device__ __forceinline__ void IssueScores(float (&s)[kBN / 8][4], uint32_t q_rows, uint32_t k_tile) {
#pragma unroll
  for (int kc = 0; kc < kHD / 16; ++kc) {
    const uint32_t step = (kc % 4) * 32;
    WgmmaM64N64K16Ss(s, WgmmaDesc(q_rows + (kc / 4) * Layout::kQBlockBytes + step, 16, 1024),
                     WgmmaDesc(k_tile + (kc / 4) * Layout::kBlockBytes + step, 16, 1024), kc > 0);
  }
}

// The two consumer warpgroups take turns issuing to the tensor cores:
// warpgroup c waits on barrier 2 + c for its turn, which the other one
// grants after issuing its own (barrier.arrive). Warpgroup 1 grants the first
// turn; warpgroup 0 takes back the grant left over at the end.
__device__ __forceinline__ void TurnBegin(int wg) {
  asm volatile("barrier.sync %0, 256;\n" ::"r"(2 + wg) : "memory");
  __syncwarp();
}
__device__ __forceinline__ void TurnEnd(int wg) {
  asm volatile("barrier.arrive %0, 256;\n" ::"r"(3 - wg) : "memory");
}

__device__ __forceinline__ void Consume(const AttentionParams& p, WsSmem& sm, int num_items) {
  const int ct = threadIdx.x - kProducerThreads;
  const int lane = ct & 31, cw = ct >> 5, wg = cw >> 2;
  const int quad = lane >> 2, qlane = lane & 3;
  const int hkv = p.kv.num_kv_heads, hq = p.num_q_heads, g = hq / hkv, tq = kRows / g;
  const float scale_log2 = 1.4426950408889634f / sqrtf(static_cast<float>(kHD));  // log2(e) / sqrt(hd)
  int stage = 0;
  uint32_t phase = 0;
  int it = 0;
  if (wg == 1) TurnEnd(wg);  // warpgroup 0 goes first
  for (int item = blockIdx.x; item < num_items; item += gridDim.x, ++it) {
    const AttnTile tile = p.tiles[item / hkv];
    const int h = item % hkv;
    const StepChunk c = p.chunks[tile.chunk];
    int qpos[2];
    int64_t qrow[2];
    ThreadQueryRows(tile, c, h, g, hq, tq, cw * 16, quad, qpos, qrow);
    float o[kHD / 8][4];
#pragma unroll
    for (int dt = 0; dt < kHD / 8; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};

    const int buf = it & 1;
    MbarWait(&sm.q_full[buf], (it >> 1) & 1);
    __syncwarp();  // the warp converged again before .aligned wgmma instructions
    const uint32_t q_rows = SmemAddr(sm.q[buf]) + wg * 64 * 128;
    auto advance = [&] {
      if (++stage == kStages) {
        stage = 0;
        phase ^= 1;
      }
    };
    const int num_tiles = sm.q_tiles[buf];
    // Waits for tile `st`: its spans by the producer's stores, its K/V rows
    // by cp.async (generic proxy) for the wgmma reads (async proxy).
    auto acquire = [&](int st) {
      MbarWait(&sm.full[st], phase);
      __syncwarp();  // converged again before .aligned wgmma instructions
      ProxyFence();
    };
    // Tile 0's S (in this warpgroup's turn); then per tile: mask and softmax
    // of this tile, and in the warpgroup's turn on the tensor cores this
    // tile's O += P V and the next tile's S; the other warpgroup's softmax
    // runs meanwhile (FlashAttention-3's ping-pong). kSkip tiles (no query
    // of the item sees a key) only pass their stage back.
    int cur = stage;
    acquire(cur);
    int cur_mode = sm.meta[cur].mode;
    advance();
    float s[kBN / 8][4];
    auto scores = [&](int st) {  // S of stage st's tile, asynchronous
      WgmmaFence();
      IssueScores(s, q_rows, SmemAddr(sm.k[st]));
      WgmmaCommit();
    };
    TurnBegin(wg);
    if (cur_mode != kSkip) scores(cur);
    TurnEnd(wg);
    WgmmaWaitN<0>();
    FenceOperands(s);
    for (int kt = 0; kt < num_tiles; ++kt) {
      uint32_t pa[kBN / 16][4];
      if (cur_mode != kSkip) {
        MaskScores(s, cur_mode, sm.meta[cur].span, sm.meta[cur].bias, qpos, qlane);
        OnlineSoftmax<kHD>(s, m, l, pa, scale_log2, o);
      }
      int next = -1, next_mode = kSkip;
      if (kt + 1 < num_tiles) {
        next = stage;
        acquire(next);
        next_mode = sm.meta[next].mode;
        advance();
      }
      TurnBegin(wg);
      if (cur_mode != kSkip) {
        WgmmaFence();
        IssuePv(o, pa, SmemAddr(sm.v[cur]));
        WgmmaCommit();
      }
      if (next_mode != kSkip) scores(next);
      TurnEnd(wg);
      WgmmaWaitN<0>();
      FenceOperands(o);
      FenceOperands(pa);
      FenceOperands(s);
      MbarArrive(&sm.empty[cur]);
      cur = next;
      cur_mode = next_mode;
    }
    MbarArrive(&sm.q_empty[buf]);
    StoreAttentionRows<kHD>(p, o, l, qpos, qrow, qlane);
  }
  if (wg == 0) TurnBegin(wg);  // the grant warpgroup 1 left after its last turn
}

#endif  // device code

// grid: min(items, multiprocessors), block: 384, dynamic shared memory:
// kSmemBytes (~200 KB: 2 Q buffers and 4 K/V stages of 32 KB). 161
// registers, no spills: the consumers hold O, S and P, no more.
__global__ void __launch_bounds__(kThreads, 1) DmsAttentionWsKernel(AttentionParams p) {
#if defined(DMS_WS_DEVICE_CODE)
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const uint32_t pad = (1024 - (SmemAddr(smem_raw) & 1023)) & 1023;
  WsSmem& sm = *reinterpret_cast<WsSmem*>(smem_raw + pad);
  const int num_items = p.num_tiles * p.kv.num_kv_heads;
  if (threadIdx.x == 0) {
    for (int s = 0; s < kStages; ++s) {
      MbarInit(&sm.full[s], 2 * kProducerThreads);  // stores + copies of each thread
      MbarInit(&sm.empty[s], kConsumerThreads);
    }
    for (int b = 0; b < 2; ++b) {
      MbarInit(&sm.q_full[b], kProducerThreads);
      MbarInit(&sm.q_empty[b], kConsumerThreads);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  __syncthreads();
  if (threadIdx.x < kProducerThreads) {
    Producer producer{p, sm, static_cast<int>(threadIdx.x)};
    producer.Run(num_items);
  } else {
    Consume(p, sm, num_items);
  }
#else
  __trap();
#endif
}

int Multiprocessors() {
  static const int n = [] {
    int dev = 0, count = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
    return count;
  }();
  return n;
}

}  // namespace

cudaError_t LaunchDmsAttentionWs(const AttentionParams& p, cudaStream_t stream) {
  if (p.num_tiles <= 0) return cudaSuccess;
  const int hkv = p.kv.num_kv_heads;
  if (hkv <= 0 || p.num_q_heads % hkv != 0 || p.num_splits != 1 || p.kv.head_dim != kHD ||
      p.kv.dtype != KvDType::kBF16 || p.num_q_heads / hkv > kRows) {
    return cudaErrorInvalidValue;
  }
  static const cudaError_t attr = cudaFuncSetAttribute(
      DmsAttentionWsKernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kSmemBytes);
  if (attr != cudaSuccess) return attr;
  const int sms = Multiprocessors();
  if (sms <= 0) return cudaErrorInvalidDevice;
  const int64_t items = static_cast<int64_t>(p.num_tiles) * hkv;
  const int grid = static_cast<int>(items < sms ? items : sms);
  DmsAttentionWsKernel<<<grid, kThreads, kSmemBytes, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace dms::cuda
