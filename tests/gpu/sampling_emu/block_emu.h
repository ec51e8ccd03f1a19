// CPU emulation of one CUDA block of 1024 threads as fibers (x86-64), for
// checking the row sampler's logic (kernels/sampling_rows.cu) on a machine
// without a GPU. Each thread runs until it reaches a barrier: __syncthreads
// and every warp collective wait for all their threads, so a barrier some
// thread never reaches is reported (and aborts) instead of hanging. Shared
// memory is plain static memory (one block at a time); atomics are plain
// adds; device math is the host's (glibc exp, not CUDA's). Not a memory-model
// checker: threads between two barriers run one after the other.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#undef __device__
#undef __forceinline__
#undef __global__
#undef __shared__
#undef __launch_bounds__
#undef __align__
#define __device__
#define __forceinline__ inline
#define __global__
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

struct EmuDim3 {
  unsigned x = 0, y = 0, z = 0;
};
inline EmuDim3 emu_threadIdx, emu_blockIdx, emu_blockDim;
#define threadIdx emu_threadIdx
#define blockIdx emu_blockIdx
#define blockDim emu_blockDim

namespace emu {
constexpr int kThreads = 1024;
extern "C" void emu_switch(void** from_sp, void* to_sp);
asm(R"(
.text
.globl emu_switch
emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
)");
struct Fiber {
  void* sp = nullptr;
  char* stack = nullptr;
  bool done = false;
  const char* waiting = nullptr;
};
constexpr size_t kStack = 256 << 10;
inline void* g_main_sp = nullptr;
inline std::vector<Fiber> g_fibers;
inline int g_cur = -1;
inline uint64_t g_events = 0;
inline void Yield() { emu_switch(&g_fibers[g_cur].sp, g_main_sp); }
struct Barrier {
  int arrived = 0;
  uint64_t gen = 0;
};
inline Barrier g_block;
inline Barrier g_warp[32];
inline void Wait(Barrier& b, int n, const char* what) {
  const uint64_t gen = b.gen;
  if (++b.arrived == n) {
    b.arrived = 0;
    ++b.gen;
    ++g_events;
    return;
  }
  g_fibers[g_cur].waiting = what;
  while (b.gen == gen) Yield();
  g_fibers[g_cur].waiting = nullptr;
}
inline uint64_t g_xchg[32][32];
inline std::function<void()> g_body;
inline void Trampoline() {
  g_body();
  g_fibers[g_cur].done = true;
  ++g_events;
  emu_switch(&g_fibers[g_cur].sp, g_main_sp);
  std::abort();
}

// Runs body() as 1024 threads of block `block`.
inline void RunBlock(int block, const std::function<void()>& body) {
  g_body = body;
  if (g_fibers.empty()) {
    g_fibers.resize(kThreads);
    for (Fiber& f : g_fibers) f.stack = static_cast<char*>(std::malloc(kStack));
  }
  g_block = Barrier{};
  for (auto& w : g_warp) w = Barrier{};
  for (int t = 0; t < kThreads; ++t) {
    Fiber& f = g_fibers[t];
    f.done = false;
    f.waiting = nullptr;
    // Initial frame: 6 saved registers, then the return address (Trampoline),
    // with rsp = 8 mod 16 at its entry as after a call.
    uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack) + kStack) & ~uintptr_t{15};
    void** sp = reinterpret_cast<void**>(top - 8);
    *--sp = reinterpret_cast<void*>(&Trampoline);
    for (int r = 0; r < 6; ++r) *--sp = nullptr;
    f.sp = sp;
  }
  emu_blockIdx.x = block;
  emu_blockDim.x = kThreads;
  int remaining = kThreads;
  while (remaining > 0) {
    const uint64_t before = g_events;
    for (int t = 0; t < kThreads; ++t) {
      if (g_fibers[t].done) continue;
      g_cur = t;
      emu_threadIdx.x = t;
      emu_switch(&g_main_sp, g_fibers[t].sp);
      if (g_fibers[t].done) --remaining;
    }
    if (remaining > 0 && g_events == before) {
      std::fprintf(stderr, "EMU DEADLOCK in block %d:", block);
      int shown = 0;
      for (int t = 0; t < kThreads && shown < 40; ++t) {
        if (!g_fibers[t].done) {
          std::fprintf(stderr, " t%d:%s", t, g_fibers[t].waiting ? g_fibers[t].waiting : "?");
          ++shown;
        }
      }
      std::fprintf(stderr, " (%d done)\n", kThreads - remaining);
      std::abort();
    }
  }
}
}  // namespace emu

inline void __syncthreads() { emu::Wait(emu::g_block, emu::kThreads, "syncthreads"); }

inline int EmuLane() { return emu_threadIdx.x & 31; }
inline int EmuWarp() { return emu_threadIdx.x >> 5; }
template <typename T>
inline uint64_t EmuBits(T v) {
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <typename T>
inline T EmuFrom(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}
inline void EmuPut(uint64_t v, const char* what) {
  emu::g_xchg[EmuWarp()][EmuLane()] = v;
  emu::Wait(emu::g_warp[EmuWarp()], 32, what);
}
inline void EmuDone(const char* what) { emu::Wait(emu::g_warp[EmuWarp()], 32, what); }
template <typename T>
inline T EmuGet(int src, const char* what) {
  const T r = EmuFrom<T>(emu::g_xchg[EmuWarp()][src & 31]);
  EmuDone(what);
  return r;
}
template <typename T>
inline T __shfl_sync(unsigned, T v, int src, int = 32) {
  EmuPut(EmuBits(v), "shfl");
  return EmuGet<T>(src, "shfl2");
}
template <typename T>
inline T __shfl_up_sync(unsigned, T v, unsigned d, int = 32) {
  EmuPut(EmuBits(v), "shfl_up");
  const int s = EmuLane() - static_cast<int>(d);
  return EmuGet<T>(s < 0 ? EmuLane() : s, "shfl_up2");
}
template <typename T>
inline T __shfl_xor_sync(unsigned, T v, int m, int = 32) {
  EmuPut(EmuBits(v), "shfl_xor");
  return EmuGet<T>(EmuLane() ^ m, "shfl_xor2");
}
template <typename F>
inline uint64_t EmuAll(uint64_t mine, F f, const char* what) {
  EmuPut(mine, what);
  uint64_t acc = f(0, emu::g_xchg[EmuWarp()][0], true);
  for (int l = 1; l < 32; ++l) acc = f(acc, emu::g_xchg[EmuWarp()][l], false);
  EmuDone(what);
  return acc;
}
inline unsigned __ballot_sync(unsigned, int pred) {
  EmuPut(pred ? 1 : 0, "ballot");
  unsigned b = 0;
  for (int l = 0; l < 32; ++l) b |= (emu::g_xchg[EmuWarp()][l] ? 1u : 0u) << l;
  EmuDone("ballot2");
  return b;
}
inline int __all_sync(unsigned, int pred) {
  return __ballot_sync(0xffffffffu, pred) == 0xffffffffu;
}
inline unsigned __reduce_add_sync(unsigned, unsigned v) {
  return static_cast<unsigned>(EmuAll(
      v,
      [](uint64_t a, uint64_t x, bool first) { return first ? x : static_cast<uint32_t>(a + x); },
      "redux_add"));
}
inline unsigned __reduce_min_sync(unsigned, unsigned v) {
  return static_cast<unsigned>(EmuAll(
      v, [](uint64_t a, uint64_t x, bool first) { return first ? x : (x < a ? x : a); },
      "redux_min"));
}
inline unsigned __reduce_max_sync(unsigned, unsigned v) {
  return static_cast<unsigned>(EmuAll(
      v, [](uint64_t a, uint64_t x, bool first) { return first ? x : (x > a ? x : a); },
      "redux_max"));
}
inline unsigned atomicAdd(unsigned* a, unsigned v) {
  const unsigned o = *a;
  *a += v;
  return o;
}
inline int atomicAdd(int* a, int v) {
  const int o = *a;
  *a += v;
  return o;
}
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) {
  const auto o = *a;
  *a += v;
  return o;
}
inline unsigned __float_as_uint(float f) { return EmuBits(f) & 0xffffffffu; }
inline float __uint_as_float(unsigned u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __int2float_rn(int n) { return static_cast<float>(n); }
inline unsigned long long __double2ull_rn(double x) {
  return static_cast<unsigned long long>(std::nearbyint(x));
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
using std::isfinite;
using std::isnan;
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
