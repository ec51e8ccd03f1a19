// Test helper for programmatic dependent launch (kernels/device_util.cuh):
// a kernel that allows its dependents to start, waits about spin_us
// microseconds, then copies `bytes` from src to dst.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace dms::gpu_testing {

cudaError_t LaunchSlowCopy(void* dst, const void* src, size_t bytes, int spin_us, cudaStream_t stream);

}  // namespace dms::gpu_testing
