#include "engine/cuda/cublas_linear.h"

#include "engine/cuda/cuda_status.h"
#include "kernels/elementwise.h"
#include "kernels/gemv.h"

namespace dms {

namespace {
constexpr size_t kWorkspaceBytes = 32u << 20;  // cuBLAS's recommendation for Hopper
}  // namespace

CublasLinear::~CublasLinear() {
  if (handle_) cublasDestroy(handle_);
}

Status CublasLinear::Init(cudaStream_t stream) {
  stream_ = stream;
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
  if (use_gemv_ && cuda::GemvSupported(x, m, k, w)) {
    const cudaError_t err = cuda::LaunchGemv(x, m, k, w, n, y, stream_);
    if (err == cudaSuccess) return OkStatus();
    return CudaStatus(err, "GEMV (" + std::to_string(m) + "x" + std::to_string(k) + " by " +
                               std::to_string(n) + ")");
  }
  // Column-major view: yᵀ[n, m] = w[k, n]ᵀ · xᵀ[k, m]. (The error text is
  // built only on failure: this runs hundreds of times a step.)
  const float one = 1.0f, zero = 0.0f;
  cublasStatus_t st =
      cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w, CUDA_R_16BF, k, x.hi,
                   CUDA_R_16BF, k, &zero, y, CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st == CUBLAS_STATUS_SUCCESS && x.lo) {
    st = cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w, CUDA_R_16BF, k, x.lo,
                      CUDA_R_16BF, k, &one, y, CUDA_R_32F, n, CUBLAS_COMPUTE_32F,
                      CUBLAS_GEMM_DEFAULT);
  }
  if (st != CUBLAS_STATUS_SUCCESS) {
    return CublasStatus(st, "cublasGemmEx (" + std::to_string(m) + "x" + std::to_string(k) +
                                " by " + std::to_string(n) + (x.lo ? ", hi + lo" : "") + ")");
  }
  return OkStatus();
}

Status CublasLinear::RunSwiGlu(const cuda::GemmInput& x, int m, int k, const __nv_bfloat16* w,
                               int inter, float* scratch, const cuda::GemmInput& out) {
  if (m <= 0) return OkStatus();
  if (use_gemv_ && cuda::GemvSupported(x, m, k, w)) {
    const cudaError_t err = cuda::LaunchGemvSwiGlu(x, m, k, w, inter, out, stream_);
    if (err == cudaSuccess) return OkStatus();
    return CudaStatus(err, "GEMV + SwiGLU (" + std::to_string(m) + "x" + std::to_string(k) +
                               " by " + std::to_string(2 * inter) + ")");
  }
  DMS_RETURN_IF_ERROR(Run(x, m, k, w, 2 * inter, scratch));
  return CudaStatus(cuda::LaunchSwiGlu(scratch, m, inter, out, stream_), "SwiGLU");
}

}  // namespace dms
