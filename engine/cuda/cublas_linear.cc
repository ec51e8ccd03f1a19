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

bool CublasLinear::UsesGemv(const cuda::GemmInput& x, int m, int k,
                            const __nv_bfloat16* w) const {
  return use_gemv_ && cuda::GemvSupported(x, m, k, w);
}

Status CublasLinear::Run(const cuda::GemmInput& x, int m, int k, const __nv_bfloat16* w, int n,
                         float* y, bool accumulate) {
  if (m <= 0) return OkStatus();
  if (accumulate && (x.lo || UsesGemv(x, m, k, w))) {
    return InvalidArgumentError("CublasLinear: accumulate needs one cuBLAS GEMM (" +
                                std::to_string(m) + "x" + std::to_string(k) + ")");
  }
  if (UsesGemv(x, m, k, w)) {
    const cudaError_t err = cuda::LaunchGemv(x, m, k, w, n, y, stream_);
    if (err == cudaSuccess) return OkStatus();
    return CudaStatus(err, "GEMV (" + std::to_string(m) + "x" + std::to_string(k) + " by " +
                               std::to_string(n) + ")");
  }
  // Column-major view: yᵀ[n, m] = w[k, n]ᵀ · xᵀ[k, m]. (The error text is
  // built only on failure: this runs hundreds of times a step.)
  const float one = 1.0f, zero = 0.0f;
  cublasStatus_t st = cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w, CUDA_R_16BF,
                                   k, x.hi, CUDA_R_16BF, k, accumulate ? &one : &zero, y,
                                   CUDA_R_32F, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
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

Status CublasLinear::RunBf16Out(const cuda::GemmInput& x, int m, int k, const __nv_bfloat16* w,
                                int n, __nv_bfloat16* y) {
  if (m <= 0) return OkStatus();
  if (x.lo) return InvalidArgumentError("CublasLinear: a bf16 output takes bf16 activations");
  const float one = 1.0f, zero = 0.0f;
  const cublasStatus_t st =
      cublasGemmEx(handle_, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &one, w, CUDA_R_16BF, k, x.hi,
                   CUDA_R_16BF, k, &zero, y, CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) {
    return CublasStatus(st, "cublasGemmEx (" + std::to_string(m) + "x" + std::to_string(k) +
                                " by " + std::to_string(n) + ", bf16 out)");
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
  if (x.lo == nullptr) {  // bf16 activations: bf16 gate;up, as the model's bf16 Linear
    __nv_bfloat16* gu = reinterpret_cast<__nv_bfloat16*>(scratch);
    DMS_RETURN_IF_ERROR(RunBf16Out(x, m, k, w, 2 * inter, gu));
    return CudaStatus(cuda::LaunchSwiGlu(gu, m, inter, out, stream_), "SwiGLU");
  }
  DMS_RETURN_IF_ERROR(Run(x, m, k, w, 2 * inter, scratch));
  return CudaStatus(cuda::LaunchSwiGlu(scratch, m, inter, out, stream_), "SwiGLU");
}

}  // namespace dms
