#include "engine/cuda/cublas_linear.h"

#include "engine/cuda/cuda_status.h"

namespace dms {

namespace {
constexpr size_t kWorkspaceBytes = 32u << 20;  // cuBLAS's recommendation for Hopper
}  // namespace

CublasLinear::~CublasLinear() {
  if (handle_) cublasDestroy(handle_);
}

Status CublasLinear::Init(cudaStream_t stream) {
  DMS_CUBLAS_RETURN_IF_ERROR(cublasCreate(&handle_), "cublasCreate");
  DMS_CUBLAS_RETURN_IF_ERROR(cublasSetStream(handle_, stream), "cublasSetStream");
  DMS_RETURN_IF_ERROR(workspace_.Allocate(kWorkspaceBytes, "cuBLAS workspace"));
  DMS_CUBLAS_RETURN_IF_ERROR(cublasSetWorkspace(handle_, workspace_.get(), kWorkspaceBytes),
                             "cublasSetWorkspace");
  return OkStatus();
}

Status CublasLinear::Run(const cuda::GemmInput& x, int m, int k, const __nv_bfloat16* w, int n,
                         float* y) {
  if (m <= 0) return OkStatus();
  // Column-major view: yᵀ[n, m] = w[k, n]ᵀ · xᵀ[k, m].
  const float one = 1.0f, zero = 0.0f;
  DMS_CUBLAS_RETURN_IF_ERROR(
      cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w, CUDA_R_16BF, k, x.hi,
                   CUDA_R_16BF, k, &zero, y, CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                   CUBLAS_GEMM_DEFAULT),
      "cublasGemmEx (" + std::to_string(m) + "x" + std::to_string(k) + " by " +
          std::to_string(n) + ")");
  if (x.lo) {
    DMS_CUBLAS_RETURN_IF_ERROR(
        cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w, CUDA_R_16BF, k, x.lo,
                     CUDA_R_16BF, k, &one, y, CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                     CUBLAS_GEMM_DEFAULT),
        "cublasGemmEx (lo part)");
  }
  return OkStatus();
}

}  // namespace dms
