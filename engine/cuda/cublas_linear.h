// nn.Linear on the GPU: y = x · wᵀ with bf16 weights and activations and fp32
// accumulation and output. cuBLAS for GEMMs; for decode-sized m (at most
// cuda::kGemvMaxRows rows) a GEMV kernel that streams the weights
// (kernels/gemv.h), unless disabled.
//   x: [m, k] bf16 (GemmInput; with `lo`, y = w·hi + w·lo in two GEMMs)
//   w: [n, k] bf16 row-major (Hugging Face layout)
//   y: [m, n] f32 row-major (Run with accumulate: y += x · wᵀ, cuBLAS only)
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "engine/cuda/device_memory.h"
#include "common/status.h"
#include "kernels/kernel_types.h"

namespace dms {

class CublasLinear {
 public:
  CublasLinear() = default;
  ~CublasLinear();
  CublasLinear(const CublasLinear&) = delete;
  CublasLinear& operator=(const CublasLinear&) = delete;

  // Creates the handle on `stream` with a fixed workspace, so cuBLAS never
  // allocates during a step.
  Status Init(cudaStream_t stream);

  // accumulate: y += x · wᵀ (cuBLAS beta = 1: a residual add with no pass of
  // its own). Only for shapes that go to cuBLAS (UsesGemv false) and one
  // GEMM (x.lo null: hi + lo would change the order of the additions).
  Status Run(const cuda::GemmInput& x, int m, int k, const __nv_bfloat16* w, int n, float* y,
             bool accumulate = false);
  bool UsesGemv(const cuda::GemmInput& x, int m, int k, const __nv_bfloat16* w) const;
  // y: [m, n] bf16 (the fp32 accumulators rounded): one cuBLAS GEMM, x.lo null.
  Status RunBf16Out(const cuda::GemmInput& x, int m, int k, const __nv_bfloat16* w, int n,
                    __nv_bfloat16* y);

  // The MLP's gate;up product and SwiGLU: out[m, inter] = silu(g) * u as
  // GEMM input, w: [2 inter, k]. One GEMV pass when it takes the shape (out
  // must not overlap x then), else the GEMM into `scratch` [m, 2 inter] f32
  // (bf16 when x.lo is null) and the SwiGLU kernel.
  Status RunSwiGlu(const cuda::GemmInput& x, int m, int k, const __nv_bfloat16* w, int inter,
                   float* scratch, const cuda::GemmInput& out);

  // Tests and benchmarks: false sends every shape to cuBLAS.
  void set_use_gemv(bool on) { use_gemv_ = on; }
  bool use_gemv() const { return use_gemv_; }

 private:
  cublasHandle_t handle_ = nullptr;
  cudaStream_t stream_ = nullptr;
  bool use_gemv_ = true;
  DeviceBuffer workspace_;
};

}  // namespace dms
