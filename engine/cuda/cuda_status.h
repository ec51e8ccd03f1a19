// CUDA and cuBLAS return codes as Status (INTERNAL, or RESOURCE_EXHAUSTED for
// out-of-memory), one line naming the call that failed.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "common/status.h"

namespace dms {

inline Status CudaStatus(cudaError_t err, const std::string& what) {
  if (err == cudaSuccess) return OkStatus();
  std::string msg = "CUDA: " + what + ": " + cudaGetErrorString(err);
  return err == cudaErrorMemoryAllocation ? ResourceExhaustedError(msg) : InternalError(msg);
}

inline Status CublasStatus(cublasStatus_t err, const std::string& what) {
  if (err == CUBLAS_STATUS_SUCCESS) return OkStatus();
  return InternalError("cuBLAS: " + what + ": " + cublasGetStatusString(err));
}

}  // namespace dms

#define DMS_CUDA_RETURN_IF_ERROR(expr, what) DMS_RETURN_IF_ERROR(::dms::CudaStatus((expr), (what)))
#define DMS_CUBLAS_RETURN_IF_ERROR(expr, what) \
  DMS_RETURN_IF_ERROR(::dms::CublasStatus((expr), (what)))
