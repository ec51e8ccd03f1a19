// The two tensor-core "cores" of the DMS prefill attention kernel
// (attention_mma.cu): how a [kKeyTile keys, HD] K or V tile is laid out in
// shared memory, and the two products of a key tile for the block's query
// rows. The kernel skeleton (key walk, masks, online softmax, cp.async double
// buffer) is shared; a core is chosen per launch (FlashInfer's pattern of
// variants as small policies over one skeleton).
//
//   MmaSyncCore: 64 query rows, 4 warps; mma.sync m16n8k16 per warp, Q in
//                registers, K/V fragments by ldmatrix from padded rows
//                (sm_80 and later; the portable path).
//   WgmmaCore:   128 query rows, two warpgroups (8 warps) sharing each K/V
//                tile: every key tile the block loads serves twice the rows,
//                which halves the L2 -> SM traffic per FLOP (what bounds the
//                mma.sync kernel at 64 rows). Each warpgroup issues
//                wgmma m64nNk16 with the tensor cores reading Q, K and V
//                straight from shared memory in the 128-byte-swizzled
//                layout (sm_90a only).
//
// Both use the same register layouts, which is what lets the skeleton stay
// one: P as the A fragment of m16n8k16 (warp w: rows 16w..16w+15; a[0]
// row quad k 2q..2q+1, a[1] row quad+8, a[2]/a[3] the same at k + 8), and
// accumulators s[nt][e] / o[dt][e] as m16n8 tiles (row quad + 8 * (e >> 1),
// column 8 * nt + 2 * qlane + (e & 1)); wgmma's m64 register layouts are
// these, warp by warp.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace dms::cuda::attn_mma {

inline constexpr int kKeyTile = 64;  // keys per tile (kBN)

__device__ __forceinline__ uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void Ldsm4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void Ldsm4T(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// 16-byte global -> shared copy; zero-fill when !valid (src is then not read).
__device__ __forceinline__ void CpAsync16(void* dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(SmemAddr(dst)), "l"(src),
               "r"(valid ? 16 : 0));
}
// ... and always copied.
__device__ __forceinline__ void CpAsync16(void* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(SmemAddr(dst)), "l"(src));
}
// ... to a shared-memory address.
__device__ __forceinline__ void CpAsync16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// d[16x8] += a[16x16] * b[16x8]; bf16 inputs, fp32 accumulators.
__device__ __forceinline__ void Mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                    uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
      "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// mma.sync core. Tile rows padded by 16 bytes so the 8 rows one ldmatrix
// reads start on different banks.
template <int HD>
struct MmaSyncCore {
  static constexpr int kRows = 64;  // query rows per block
  static constexpr int kThreads = 128;
  static constexpr int kRowBytes = (HD + 8) * 2;
  static constexpr int kTileBytes = kKeyTile * kRowBytes;
  static constexpr int kAlign = 16;
  // Q lives in registers as A fragments: qf[kc] for head_dim [16 kc, 16 kc + 16).
  static constexpr bool kQInSmem = false;
  static constexpr int kQFrags = HD / 16;
  static constexpr int kQBytes = 16;  // unused
  __device__ static uint32_t QOffset(int, int) { return 0; }

  // Byte offset in a tile of elements [d, d + 8) of key `key` (d % 8 == 0);
  // Offset(key + 8 j, d) = Offset(key, d) + 8 j * kRowPitch (both cores).
  __device__ static uint32_t Offset(int key, int d) { return key * kRowBytes + d * 2; }
  static constexpr uint32_t kRowPitch = kRowBytes;
  __device__ static void TileLanded() {}
  // p of any thread of the warp (the threads one mma.sync's scores span).
  __device__ static bool AnyInMmaGroup(bool p, int /*warp*/) { return __any_sync(0xffffffffu, p); }
  // O += P V completes in AccumulatePv here: nothing in flight.
  __device__ static void Drain(float (&)[HD / 8][4], uint32_t (&)[kKeyTile / 16][4]) {}

  // s = Q K^T: 16 rows x 64 keys per warp, n-tiles of 8 keys.
  __device__ static void Scores(float (&s)[kKeyTile / 8][4], const uint32_t (&qf)[kQFrags][4],
                                uint32_t /*q_smem*/, uint32_t k_tile, int lane, int /*warp*/) {
#pragma unroll
    for (int nt = 0; nt < kKeyTile / 8; ++nt) s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
    for (int kc = 0; kc < HD / 16; ++kc) {
#pragma unroll
      for (int np = 0; np < kKeyTile / 16; ++np) {
        // Matrices: (keys +0..7, d +0..7), (keys +0..7, d +8..15),
        // (keys +8..15, d +0..7), (keys +8..15, d +8..15) -> b0, b1 of two n-tiles.
        uint32_t b[4];
        Ldsm4(b, k_tile + Offset(np * 16 + ((lane >> 4) << 3) + (lane & 7),
                                 kc * 16 + ((lane >> 3) & 1) * 8));
        Mma(s[2 * np], qf[kc], b[0], b[1]);
        Mma(s[2 * np + 1], qf[kc], b[2], b[3]);
      }
    }
  }

  // o += P V; pa[kc]: P's A fragments for keys [16 kc, 16 kc + 16).
  __device__ static void AccumulatePv(float (&o)[HD / 8][4], const uint32_t (&pa)[kKeyTile / 16][4],
                                      uint32_t v_tile, int lane) {
#pragma unroll
    for (int kc = 0; kc < kKeyTile / 16; ++kc) {
#pragma unroll
      for (int dp = 0; dp < HD / 16; ++dp) {
        // Transposed matrices: (keys +0..7, d +0..7), (keys +8..15, d +0..7),
        // (keys +0..7, d +8..15), (keys +8..15, d +8..15) -> b0, b1 of two d-tiles.
        uint32_t b[4];
        Ldsm4T(b, v_tile + Offset(kc * 16 + ((lane >> 3) & 1) * 8 + (lane & 7),
                                  dp * 16 + (lane >> 4) * 8));
        Mma(o[2 * dp], pa[kc], b[0], b[1]);
        Mma(o[2 * dp + 1], pa[kc], b[2], b[3]);
      }
    }
  }
};

// ---- wgmma (sm_90a) ----

// Shared-memory matrix descriptor: start address, leading and stride byte
// offsets (16-byte units, 14 bits each), layout 1 = 128-byte swizzle; base
// offset 0 because every tile starts on a 1024-byte boundary.
__device__ __forceinline__ uint64_t WgmmaDesc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) | static_cast<uint64_t>(lbo >> 4) << 16 |
         static_cast<uint64_t>(sbo >> 4) << 32 | uint64_t{1} << 62;
}
// The same from a tile's address in 16-byte units (addr16 = addr >> 4,
// below 2^14 with every byte it addresses: shared memory is under 256 KB)
// and a compile-time byte offset into the tile: one add a descriptor, where
// WgmmaDesc's mask and shift per call cost the kernel ~10 instructions a
// wgmma (Nsight's SASS view).
__device__ __forceinline__ uint64_t WgmmaDescAt(uint32_t addr16, uint32_t off, uint32_t lbo,
                                                uint32_t sbo) {
  const uint32_t lo = addr16 + ((off >> 4) + ((lbo >> 4) << 16));
  const uint32_t hi = (sbo >> 4) | (1u << 30);
  return static_cast<uint64_t>(hi) << 32 | lo;
}

__device__ __forceinline__ void WgmmaFence() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void WgmmaCommit() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void WgmmaWait() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
#endif
}
// Waits until at most N of this warpgroup's committed wgmma groups are
// still running (they finish in order).
template <int N>
__device__ __forceinline__ void WgmmaWaitN() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
__device__ __forceinline__ void WgmmaCommitAndWait() {
  WgmmaCommit();
  WgmmaWait();
}

// The accumulator operands of d[i][0..3], in the order of the asm's registers.
#define DMS_WGMMA_D4(i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])

// d[64 x 64] = a[64 x 16] * b[16 x 64] (+ d when accumulate), both K-major
// in shared memory. Warpgroup-wide.
__device__ __forceinline__ void WgmmaM64N64K16Ss(float (&d)[8][4], uint64_t desc_a, uint64_t desc_b,
                                                 int accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, "
      "%32, %33, p, 1, 1, 0, 0;\n}\n"
      : DMS_WGMMA_D4(0), DMS_WGMMA_D4(1), DMS_WGMMA_D4(2), DMS_WGMMA_D4(3),
        DMS_WGMMA_D4(4), DMS_WGMMA_D4(5), DMS_WGMMA_D4(6), DMS_WGMMA_D4(7)
      : "l"(desc_a), "l"(desc_b), "r"(accumulate)
      : "memory");
#else
  __trap();
#endif
}

// d[64 x 128] += a[64 x 16] (registers) * b[16 x 128] (shared memory,
// MN-major): O += P V at head_dim 128. Warpgroup-wide.
__device__ __forceinline__ void WgmmaM64N128K16(float (&d)[16][4], const uint32_t (&a)[4],
                                                uint64_t desc_b) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "
      "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "
      "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "
      "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, "
      "{%64, %65, %66, %67}, %68, p, 1, 1, %70;\n}\n"
      : DMS_WGMMA_D4(0), DMS_WGMMA_D4(1), DMS_WGMMA_D4(2), DMS_WGMMA_D4(3),
        DMS_WGMMA_D4(4), DMS_WGMMA_D4(5), DMS_WGMMA_D4(6), DMS_WGMMA_D4(7),
        DMS_WGMMA_D4(8), DMS_WGMMA_D4(9), DMS_WGMMA_D4(10), DMS_WGMMA_D4(11),
        DMS_WGMMA_D4(12), DMS_WGMMA_D4(13), DMS_WGMMA_D4(14), DMS_WGMMA_D4(15)
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(1), "n"(1)
      : "memory");
#else
  __trap();
#endif
}

// wgmma core (head_dim 128). A K or V tile is 2 column blocks of [64 keys]
// [64 elements] (128 bytes a row, 8 KB a block); in each, the 16-byte chunk
// c of row r sits at chunk c ^ (r % 8): the 128-byte swizzle the tensor
// cores undo, and conflict-free for the cp.async writes too. For S = Q K^T
// this is B K-major (head_dim contiguous); for O = P V the same bytes are B
// MN-major. Q (bf16) is laid out the same way, [128 rows] per column block;
// warpgroup wg takes rows [64 wg, 64 wg + 64).
// (A head_dim 64 version of this core disagreed with the CPU reference in
// its first GPU run and is not enabled; Qwen3 uses 128 throughout.)
template <int HD>
struct WgmmaCore {
  static_assert(HD == 128, "the wgmma core is built for head_dim 128");
  static constexpr int kRows = 128;
  static constexpr int kThreads = 256;
  static constexpr int kBlockBytes = kKeyTile * 128;
  static constexpr int kTileBytes = (HD / 64) * kBlockBytes;
  static constexpr int kAlign = 1024;
  static constexpr bool kQInSmem = true;
  static constexpr int kQFrags = 1;  // unused
  static constexpr int kQBlockBytes = kRows * 128;
  static constexpr int kQBytes = (HD / 64) * kQBlockBytes;

  __device__ static uint32_t Offset(int key, int d) {
    return (d / 64) * kBlockBytes + key * 128 + ((((d % 64) / 8) ^ (key % 8)) * 16);
  }
  static constexpr uint32_t kRowPitch = 128;  // the swizzle repeats every 8 keys
  // Byte offset of Q element (row, d), any d.
  __device__ static uint32_t QOffset(int row, int d) {
    return (d / 64) * kQBlockBytes + row * 128 + ((((d % 64) / 8) ^ (row % 8)) * 16) + (d % 8) * 2;
  }
  // p of any thread of the warpgroup (the threads one wgmma's scores span):
  // a reduction on named barrier 1 + warpgroup (__syncthreads uses 0).
  __device__ static bool AnyInMmaGroup(bool p, int warp) {
    int any;
    asm volatile(
        "{\n.reg .pred p, q;\nsetp.ne.b32 p, %1, 0;\nbar.red.or.pred q, %2, 128, p;\n"
        "selp.b32 %0, 1, 0, q;\n}\n"
        : "=r"(any)
        : "r"(p ? 1 : 0), "r"(1 + warp / 4));
    return any != 0;
  }
  // The tile was written through the generic proxy (cp.async); the tensor
  // cores read it through the async proxy. Every writing thread fences
  // before the block barrier that publishes the tile.
  __device__ static void TileLanded() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
  }

  // K-major B: 8-row groups 1024 bytes apart (SBO); k16 step kc starts 32
  // bytes further into the 128-byte row, or in the next column block. The
  // first step overwrites s (no zeroing pass).
  __device__ static void Scores(float (&s)[kKeyTile / 8][4], const uint32_t (&)[kQFrags][4],
                                uint32_t q_smem, uint32_t k_tile, int /*lane*/, int warp) {
    const uint32_t q16 = (q_smem + (warp / 4) * 64 * 128) >> 4, k16 = k_tile >> 4;
    WgmmaFence();
#pragma unroll
    for (int kc = 0; kc < HD / 16; ++kc) {
      const uint32_t step = (kc % 4) * 32;
      WgmmaM64N64K16Ss(s, WgmmaDescAt(q16, (kc / 4) * kQBlockBytes + step, 16, 1024),
                       WgmmaDescAt(k16, (kc / 4) * kBlockBytes + step, 16, 1024), kc > 0);
    }
    WgmmaCommitAndWait();
  }

  // MN-major B: 64-element column blocks kBlockBytes apart (LBO), 8-key
  // groups 1024 bytes apart (SBO); k16 step kc starts 16 rows further.
  // Asynchronous: returns with the MMAs in flight, reading o, pa and the V
  // tile; Drain() before touching any of them (the skeleton drains before
  // the barrier after which any thread may refill the V buffer, so the MMAs
  // overlap the next tile's metadata work).
  __device__ static void AccumulatePv(float (&o)[HD / 8][4], const uint32_t (&pa)[kKeyTile / 16][4],
                                      uint32_t v_tile, int /*lane*/) {
    const uint32_t v16 = v_tile >> 4;
    WgmmaFence();
#pragma unroll
    for (int kc = 0; kc < kKeyTile / 16; ++kc) {
      WgmmaM64N128K16(o, pa[kc], WgmmaDescAt(v16, kc * 16 * 128, kBlockBytes, 1024));
    }
    WgmmaCommit();
  }
  // Waits for the last AccumulatePv; the empty asm statements tell the
  // compiler o and pa are live (and may change) up to here, so it keeps
  // their registers for the in-flight MMAs.
  __device__ static void Drain(float (&o)[HD / 8][4], uint32_t (&pa)[kKeyTile / 16][4]) {
    WgmmaWait();
#pragma unroll
    for (int i = 0; i < HD / 8; ++i) {
#pragma unroll
      for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(o[i][e])::"memory");
    }
#pragma unroll
    for (int i = 0; i < kKeyTile / 16; ++i) {
#pragma unroll
      for (int e = 0; e < 4; ++e) asm volatile("" : "+r"(pa[i][e])::"memory");
    }
  }
};

#undef DMS_WGMMA_D4

}  // namespace dms::cuda::attn_mma
