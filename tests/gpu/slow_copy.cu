#include "tests/gpu/slow_copy.h"

#include "kernels/device_util.cuh"

namespace dms::gpu_testing {
namespace {

// One block: lets a programmatic dependent launch start at once, sleeps
// about `spin_us`, then copies. A dependent that does not wait reads the
// destination before the copy.
__global__ void SlowCopyKernel(uint8_t* dst, const uint8_t* src, size_t bytes, int spin_us) {
  cuda::AllowDependentLaunch();
  for (int i = 0; i < spin_us; ++i) __nanosleep(1000);
  for (size_t i = threadIdx.x; i < bytes; i += blockDim.x) dst[i] = src[i];
}

}  // namespace

cudaError_t LaunchSlowCopy(void* dst, const void* src, size_t bytes, int spin_us, cudaStream_t stream) {
  SlowCopyKernel<<<1, 256, 0, stream>>>(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src),
                                        bytes, spin_us);
  return cudaGetLastError();
}

}  // namespace dms::gpu_testing
