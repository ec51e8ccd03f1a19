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
//         chunk keys from the window's start on); their two warps' ballots
//         say whether any query of the block sees a key of the tile (else
//         it is skipped: exact, it would add exp(-inf) = 0), whether each
//         key is seen by all queries or by none (then the mask is a per-key
//         bias: the common case of old keys, outside every query's window,
//         visible iff unmarked) and whether every query sees every key;
//   load  K and V rows by cp.async into a double buffer (missing keys
//         zero-filled), the next tile's copies in flight during this one's math;
//   math  S = Q K^T (bf16 in, fp32 accumulate), mask, online softmax in fp32
//         (base 2), P rounded to bf16, O += P V.
// Two block barriers a tile (docs/prefill-attention.md has the walk).
// The two products and the tile layout come from a core
// (attention_mma_cores.cuh): wgmma on sm_90a, mma.sync elsewhere.
#include <cfloat>
#include <climits>
#include <cstdlib>
#include <cstring>

#include "kernels/attention.h"
#include "kernels/attention_mma_cores.cuh"
#include "kernels/device_util.cuh"

namespace dms::cuda {
namespace {

using attn_mma::MmaSyncCore;
using attn_mma::SmemAddr;
using attn_mma::WgmmaCore;

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
  const bf16* kptr[2][kBN];
  const bf16* vptr[2][kBN];
  // Key visibility as a range of query positions: key seen by query i iff
  // span.x <= i <= span.y (x: the key's position, INT_MAX when there is no
  // key; y: x + W for a marked key, INT_MAX otherwise). One compare pair per
  // element in the mask.
  int2 span[2][kBN];
  float bias[2][kBN];   // 0 or -inf: the key's visibility when it is row-independent
  uint32_t vote[2][2][3];  // per meta buffer, per metadata warp: any, uniform, all ballots
};
static_assert(kBN == 64, "tile metadata is resolved by exactly two warps");

// 16-byte global -> shared copy; zero-fill when !valid (src is then not read).
__device__ __forceinline__ void CpAsync16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SmemAddr(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// 2^x by the special-function unit, denormal results flushed to zero (they
// are below bf16's use here anyway): one MUFU.EX2, where exp2f adds range
// fix-ups around it.
__device__ __forceinline__ float Exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

// grid: (tiles, Hkv), block: kThreads, dynamic shared memory:
// SmemBytes<Core>(). kMinBlocks: blocks per multiprocessor the register
// budget is cut for (mma.sync at HD 128 -- 2: 207 registers, no spills; 3:
// 168 registers, a few bytes of spills, measured 10-25% faster on an H200:
// the default).
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
  const StepChunk c = p.chunks[tile.chunk];
  const KvDeviceView& kv = p.kv;
  const int hq = p.num_q_heads, hkv = kv.num_kv_heads, g = hq / hkv;
  const int tq = kBM / g;
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int quad = lane >> 2, qlane = lane & 3;  // mma fragment row / column group
  const int64_t head = (static_cast<int64_t>(c.seq) * kv.num_layers + p.layer) * hkv + h;
  const int len = kv.head_len[head];
  const int window = kv.window, ring = window + 1;
  const int t0 = c.start_pos;
  const int qa = t0 + tile.q_begin, qb = qa + tile.q_count - 1;  // the tile's first/last position
  // Chunk keys: with the kept list, those older than every query's window
  // (jj < cut) come from it (only unmarked ones; the marked ones no query of
  // the tile sees), then [dense_begin, q_end) are walked one by one.
  const int q_end = tile.q_begin + tile.q_count;
  int gathered = 0, dense_begin = 0;
  if (p.kept_index != nullptr && window >= 0) {
    const int cut = tile.q_begin - window;
    if (cut > 0) {
      gathered = p.kept_count[(static_cast<int64_t>(c.row_base) + cut - 1) * hkv + h];
      dense_begin = cut;
    }
  }
  const int num_keys = len + gathered + (q_end - dense_begin);
  const int num_key_tiles = (num_keys + kBN - 1) / kBN;
  const int32_t* table = kv.page_table + head * kv.max_blocks_per_head;
  const bf16* pool = static_cast<const bf16*>(kv.pool);
  const bf16* k_new = static_cast<const bf16*>(p.k_new);
  const bf16* v_new = static_cast<const bf16*>(p.v_new);

  // This thread's two rows (fragment rows quad and quad + 8 of the warp):
  // query position, or -1 for padding rows (they see no key, are not stored).
  int qpos[2];
  int64_t qrow[2];
#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    const int r = warp * 16 + quad + 8 * hh;
    const int tok = r % tq, hg = r / tq;
    const bool real = hg < g && tok < tile.q_count;
    qpos[hh] = real ? qa + tok : -1;
    qrow[hh] = (static_cast<int64_t>(c.row_base) + tile.q_begin + tok) * hq + h * g + hg;
  }

  // Q straight from the f32 q (once per block), rounded to bf16, as A
  // fragments (a0 row quad, k 2q..2q+1; a1 row quad+8; a2/a3 the same at
  // k + 8) in registers, or the same values into the core's Q tile.
  uint32_t qf[Core::kQFrags][4];
#pragma unroll
  for (int kc = 0; kc < HD / 16; ++kc) {
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float2 v = make_float2(0.0f, 0.0f);
        if (qpos[hh] >= 0) {
          v = *reinterpret_cast<const float2*>(p.q + qrow[hh] * HD + kc * 16 + half * 8 + 2 * qlane);
        }
        const uint32_t packed = PackBf16(v.x, v.y);
        if constexpr (Core::kQInSmem) {
          const int row = warp * 16 + quad + 8 * hh, d = kc * 16 + half * 8 + 2 * qlane;
          *reinterpret_cast<uint32_t*>(sm.q + Core::QOffset(row, d)) = packed;
        } else {
          qf[kc][hh + 2 * half] = packed;
        }
      }
    }
  }

  // Resolves key tile kt into meta buffer st (threads 0..63, one key each,
  // and their two warps' votes). No barrier: mode_of(st) reads the result
  // after one.
  enum { kSkip = 0, kMask = 1, kBias = 2, kFull = 3 };
  auto prepare = [&](int kt, int st) {
    if (tid < kBN) {
      const int kk = kt * kBN + tid;
      int32_t pos = INT_MAX;
      uint8_t mark = 0;
      const bf16* kp = k_new;  // any valid address: not read for a missing key
      const bf16* vp = v_new;
      if (kk < len) {
        const int32_t block = table[kk / kv.block_size];
        const int off = kk % kv.block_size;
        pos = kv.pool_pos[static_cast<int64_t>(block) * kv.block_size + off];
        kp = pool + ((static_cast<int64_t>(block) * 2) * kv.block_size + off) * HD;
        vp = kp + static_cast<int64_t>(kv.block_size) * HD;
        if (window >= 0 && pos >= t0 - ring) {
          mark = pos == t0 - 1 ? p.decisions[static_cast<int64_t>(c.row_base) * hkv + h]
                               : kv.ring_evict[head * ring + pos % ring];
        }
      } else if (kk < num_keys) {
        const int gk = kk - len;
        const int jj = gk < gathered
                           ? p.kept_index[(static_cast<int64_t>(c.row_base) + gk) * hkv + h]
                           : dense_begin + (gk - gathered);
        pos = t0 + jj;
        const int64_t r = static_cast<int64_t>(c.row_base) + jj;
        kp = k_new + (r * hkv + h) * HD;
        vp = v_new + (r * hkv + h) * HD;
        // Kept-list keys are unmarked by definition (no load).
        mark = gk >= gathered && jj + 1 < c.n ? p.decisions[(r + 1) * hkv + h] : 0;
      }
      sm.span[st][tid] =
          make_int2(pos, window >= 0 && mark != 0 && pos != INT_MAX ? pos + window : INT_MAX);
      sm.kptr[st][tid] = kp;
      sm.vptr[st][tid] = vp;
      // Some query i in [qa, qb] sees key j iff j <= qb and the nearest such
      // i (max(j, qa)) is within the window or the key is not marked; all
      // see it iff j <= qa and the farthest (qb) is within the window or the
      // key is not marked. None sees it if it is missing, or older than
      // every query's window and marked.
      const bool unmarked = window < 0 || mark == 0;
      const bool any = pos != INT_MAX && pos <= qb && (unmarked || max(pos, qa) - pos <= window);
      const bool all = pos != INT_MAX && pos <= qa && (unmarked || qb - pos <= window);
      const bool none = pos == INT_MAX || (!unmarked && pos <= qa && qa - pos > window);
      sm.bias[st][tid] = all ? 0.0f : -INFINITY;
      const uint32_t v_any = __ballot_sync(0xffffffffu, any);
      const uint32_t v_uniform = __ballot_sync(0xffffffffu, all || none);
      const uint32_t v_all = __ballot_sync(0xffffffffu, all);
      if (lane == 0) {
        sm.vote[st][warp][0] = v_any;
        sm.vote[st][warp][1] = v_uniform;
        sm.vote[st][warp][2] = v_all;
      }
    }
  };
  // After a barrier that follows prepare(.., st): kSkip (no query of the
  // block sees any key of the tile), kMask (mask per element), kBias (each
  // key is seen by every query or by none) or kFull (all see all).
  auto mode_of = [&](int st) -> int {
    const uint32_t(&v)[2][3] = sm.vote[st];
    if ((v[0][0] | v[1][0]) == 0) return kSkip;
    if ((v[0][1] & v[1][1]) != 0xffffffffu) return kMask;
    return (v[0][2] & v[1][2]) == 0xffffffffu ? kFull : kBias;
  };

  // K/V tile copies: thread tid always moves the 16-byte piece d of keys
  // tid / kPieces + k * kKeyStep (a fixed swizzle phase: the offsets fold).
  auto issue = [&](int st) {
    constexpr int kPieces = HD / 8;  // 16-byte pieces per row
    constexpr int kKeyStep = kThreads / kPieces;
    static_assert(kThreads % kPieces == 0 && kKeyStep % 8 == 0 && kBN % kKeyStep == 0);
    const int d = (tid % kPieces) * 8;
#pragma unroll
    for (int key = tid / kPieces; key < kBN; key += kKeyStep) {
      const bool ok = sm.span[st][key].x != INT_MAX;
      const uint32_t off = Core::Offset(key, d);
      CpAsync16(sm.k[st] + off, sm.kptr[st][key] + d, ok);
      CpAsync16(sm.v[st] + off, sm.vptr[st][key] + d, ok);
    }
  };

  float o[HD / 8][4];
#pragma unroll
  for (int dt = 0; dt < HD / 8; ++dt) o[dt][0] = o[dt][1] = o[dt][2] = o[dt][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const float scale_log2 = kLog2e / sqrtf(static_cast<float>(HD));

  uint32_t pa[kBN / 16][4];  // P as A fragments; read by an in-flight O += P V until Drain
  auto compute = [&](int st, int mode) {
    // S = Q K^T: 16 rows x 64 keys per warp, n-tiles of 8 keys.
    float s[kBN / 8][4];
    Core::Scores(s, qf, SmemAddr(sm.q), SmemAddr(sm.k[st]), lane, warp);
    // Mask (element e: row quad + 8 * (e >> 1), key nt * 8 + 2 * qlane + (e & 1)).
    // Scores stay unscaled: the softmax folds the base-2 scale into its
    // exponent's FMA.
    if (mode == kMask) {
#pragma unroll
      for (int nt = 0; nt < kBN / 8; ++nt) {
        // Keys nt * 8 + 2 * qlane and the one after: one 16-byte load.
        const int4 sp = *reinterpret_cast<const int4*>(&sm.span[st][nt * 8 + 2 * qlane]);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int i = qpos[e >> 1];
          const bool vis = (e & 1) ? sp.z <= i && i <= sp.w : sp.x <= i && i <= sp.y;
          s[nt][e] = vis ? s[nt][e] : -INFINITY;
        }
      }
    } else if (mode == kBias) {
#pragma unroll
      for (int nt = 0; nt < kBN / 8; ++nt) {
        const float2 b = *reinterpret_cast<const float2*>(&sm.bias[st][nt * 8 + 2 * qlane]);
        s[nt][0] += b.x;
        s[nt][1] += b.y;
        s[nt][2] += b.x;
        s[nt][3] += b.y;
      }
    }
    // Online softmax per row; a row's 64 keys are spread over the 4 lanes of a quad.
#pragma unroll
    for (int hh = 0; hh < 2; ++hh) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < kBN / 8; ++nt) mx = fmaxf(mx, fmaxf(s[nt][2 * hh], s[nt][2 * hh + 1]));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      const float m_new = fmaxf(m[hh], mx * scale_log2);
      const float m_use = m_new == -INFINITY ? 0.0f : m_new;  // nothing visible yet
      const float corr = Exp2(m[hh] - m_use);                 // 0 while m was -inf
      m[hh] = m_new;
      float sum = 0.0f;
#pragma unroll
      for (int nt = 0; nt < kBN / 8; ++nt) {
        // P straight into its A fragment (P's accumulator layout is the A
        // fragment layout of m16n8k16: pa[kc] takes n-tiles 2 kc, 2 kc + 1),
        // summed as P.V will use it (bf16), so the weights add to 1.
        const __nv_bfloat162 pr =
            __floats2bfloat162_rn(Exp2(fmaf(s[nt][2 * hh], scale_log2, -m_use)),
                                  Exp2(fmaf(s[nt][2 * hh + 1], scale_log2, -m_use)));
        sum += __low2float(pr) + __high2float(pr);
        pa[nt / 2][hh + 2 * (nt % 2)] = *reinterpret_cast<const uint32_t*>(&pr);
      }
      l[hh] = l[hh] * corr + sum;
      // Once the running max settles, corr is 1 for every row of the warp.
      if (__any_sync(0xffffffffu, corr != 1.0f)) {
#pragma unroll
        for (int dt = 0; dt < HD / 8; ++dt) {
          o[dt][2 * hh] *= corr;
          o[dt][2 * hh + 1] *= corr;
        }
      }
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
    prepare(kt, st);
    __syncthreads();
    mode = mode_of(st);
    if (mode != kSkip) break;
    __syncthreads();  // votes read before they are rewritten
  }
  if (kt < num_key_tiles) issue(st);
  CpAsyncCommit();
  while (kt < num_key_tiles) {
    int nkt = kt + 1, nmode = kSkip;
    if (nkt < num_key_tiles) prepare(nkt, st ^ 1);
    CpAsyncWait<0>();  // tile kt has landed (this thread's copies)
    Core::TileLanded();
    __syncthreads();   // ... and everyone's, with the next tile's metadata
    if (nkt < num_key_tiles) {
      nmode = mode_of(st ^ 1);
      while (nmode == kSkip && ++nkt < num_key_tiles) {
        __syncthreads();  // votes read before they are rewritten
        prepare(nkt, st ^ 1);
        __syncthreads();
        nmode = mode_of(st ^ 1);
      }
    }
    Core::Drain(o, pa);  // the previous tile's O += P V, still reading buffers st ^ 1
    if (nkt < num_key_tiles) issue(st ^ 1);
    CpAsyncCommit();
    compute(st, mode);
    __syncthreads();   // buffers st are free for the tile after next
    st ^= 1;
    kt = nkt;
    mode = nmode;
  }
  CpAsyncWait<0>();
  Core::Drain(o, pa);

#pragma unroll
  for (int hh = 0; hh < 2; ++hh) {
    float sum = l[hh];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (qpos[hh] < 0) continue;
    const float inv = 1.0f / sum;  // > 0: every query sees itself
    if (p.out_gin.hi != nullptr) {
      // Straight into the o_proj GEMM input (bf16), no f32 pass.
      bf16* out = p.out_gin.hi + qrow[hh] * HD + 2 * qlane;
#pragma unroll
      for (int dt = 0; dt < HD / 8; ++dt) {
        *reinterpret_cast<__nv_bfloat162*>(out + dt * 8) =
            __floats2bfloat162_rn(o[dt][2 * hh] * inv, o[dt][2 * hh + 1] * inv);
      }
      continue;
    }
    float* out = p.out + qrow[hh] * HD + 2 * qlane;
#pragma unroll
    for (int dt = 0; dt < HD / 8; ++dt) {
      *reinterpret_cast<float2*>(out + dt * 8) =
          make_float2(o[dt][2 * hh] * inv, o[dt][2 * hh + 1] * inv);
    }
  }
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

// kAuto: wgmma where it runs (head_dim 128), unless DMS_ATTN_CORE=mma_sync
// (A/B runs).
bool UseWgmma(int head_dim) {
  if (g_core == AttnMmaCore::kMmaSync || head_dim != 128) return false;
  if (g_core == AttnMmaCore::kWgmma) return true;
  static const bool env_mma_sync = [] {
    const char* v = std::getenv("DMS_ATTN_CORE");
    return v != nullptr && std::strcmp(v, "mma_sync") == 0;
  }();
  return !env_mma_sync && WgmmaRunsHere();
}

// wgmma: 2 blocks of 256 threads per multiprocessor (128 registers each).
cudaError_t LaunchWgmma(const AttentionParams& p, cudaStream_t stream) {
  if (!WgmmaRunsHere()) return cudaErrorInvalidDeviceFunction;
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
  if (UseWgmma(p.kv.head_dim)) return LaunchWgmma(p, stream);
  return p.kv.head_dim == 128 ? LaunchMmaSync<128>(p, stream) : LaunchMmaSync<64>(p, stream);
}

void SetDmsAttentionMmaMinBlocks(int blocks) { g_min_blocks = blocks == 3 ? 3 : 2; }

void SetDmsAttentionMmaCore(AttnMmaCore core) { g_core = core; }

bool DmsAttentionWgmmaAvailable() { return WgmmaRunsHere(); }

int DmsAttentionMmaRows(int head_dim) {
  return UseWgmma(head_dim) ? kAttnWgmmaRows : kAttnMmaRows;
}

}  // namespace dms::cuda
