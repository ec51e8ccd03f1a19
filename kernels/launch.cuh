// Kernel launches with programmatic dependent launch (PDL, sm_90+).
//
// A decode step is ~250 kernels a token, and a third of them are small
// latency-bound kernels (norms, the QKV epilogue, attention, the KV append)
// during which the HBM idles. Launched through LaunchKernel, a kernel may
// start while the kernel before it on the stream still runs (once every block
// of that one has called PdlLaunchDependents or exited): a GEMV then streams
// its first weights into registers while the norm or GEMV before it finishes,
// instead of after.
//
// The contract, for every kernel launched through LaunchKernel: each block
// calls PdlWait() before it reads anything an earlier kernel wrote or writes
// anything an earlier kernel reads; only loads of data no kernel writes
// (weights) may come before it. PdlWait returns once the previous kernel has
// completed and its writes are visible (and that one waited for its own
// predecessor, so the order is transitive). Kernels launched the plain way
// never overlap their predecessor; PdlWait in them returns at once.
//
// Which kernel groups may launch so is the scope's (CudaTuning::pdl_groups in
// the backend; A/B runs turn groups off); cards before sm_90 never do.
#pragma once

#include <cuda_runtime.h>

#include <utility>

namespace dms::cuda {

#ifdef __CUDACC__
__device__ __forceinline__ void PdlWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}

// Lets the next PDL kernel on the stream launch; its blocks then take free
// SM slots and wait in PdlWait until this kernel completes.
__device__ __forceinline__ void PdlLaunchDependents() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// The usual start of a kernel launched through LaunchKernel: let the next
// kernel launch, then wait for the previous one.
__device__ __forceinline__ void PdlEnter() {
  PdlLaunchDependents();
  PdlWait();
}
#endif  // __CUDACC__

// Which kind of kernel a launch is (bit i of a scope's groups is group i).
enum class LaunchGroup : unsigned { kGemv, kNorm, kEpilogue, kAttention, kAppend, kElementwise };

// Programmatic launch is asked for only on a thread inside a
// ProgrammaticLaunchScope(true, groups), for the kernels of those groups. The
// CUDA backend opens one around steps of at most kGemvMaxRows tokens, whose
// matmuls are the GEMV kernels; batched steps (cuBLAS GEMMs between these
// kernels) measured slower with it. Scopes nest (thread-local).
class ProgrammaticLaunchScope {
 public:
  static constexpr unsigned kAllGroups = ~0u;
  explicit ProgrammaticLaunchScope(bool on, unsigned groups = kAllGroups);
  ~ProgrammaticLaunchScope();
  ProgrammaticLaunchScope(const ProgrammaticLaunchScope&) = delete;
  ProgrammaticLaunchScope& operator=(const ProgrammaticLaunchScope&) = delete;

 private:
  unsigned saved_;
};

// Whether LaunchKernel asks for programmatic serialization for a kernel of
// `group`: inside a ProgrammaticLaunchScope(true, groups) whose groups hold
// it, on sm_90 or later. The QKV epilogue lets the attention launch only
// after its own PdlWait, so the attention's early blocks stage the cached
// keys beside the epilogue, not beside the q;k;v GEMV.
bool ProgrammaticLaunchEnabled(LaunchGroup group);

template <typename... Params, typename... Args>
cudaError_t LaunchKernel(LaunchGroup group, void (*kernel)(Params...), dim3 grid, dim3 block,
                         size_t shared_bytes, cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = shared_bytes;
  config.stream = stream;
  config.attrs = attr;
  config.numAttrs = ProgrammaticLaunchEnabled(group) ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

}  // namespace dms::cuda
