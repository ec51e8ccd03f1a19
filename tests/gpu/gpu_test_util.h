// Helpers for the GPU tests: skipping without a GPU, device arrays that are
// poisoned before every run, random data, error metrics and a result table.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace dms::gpu_testing {

// "" when a CUDA GPU is usable, else why not.
std::string NoGpuReason();

// Skips the test, visibly, where no GPU exists (CI compiles and runs these).
#define DMS_SKIP_WITHOUT_GPU()                                                            \
  do {                                                                                    \
    const std::string _why = ::dms::gpu_testing::NoGpuReason();                           \
    if (!_why.empty()) GTEST_SKIP() << "no CUDA GPU (" << _why << "): GPU test skipped"; \
  } while (0)

#define DMS_CUDA_CHECK(expr)                                                    \
  do {                                                                          \
    const cudaError_t _e = (expr);                                              \
    ASSERT_EQ(_e, cudaSuccess) << #expr << ": " << cudaGetErrorString(_e);      \
  } while (0)

// A device array of n T's. Poison() fills it with 0xff bytes (NaN for
// floats and bf16, -1 for ints) so unwritten outputs are caught.
template <typename T>
class DevArray {
 public:
  DevArray() = default;
  explicit DevArray(size_t n) { Resize(n); }
  ~DevArray() {
    if (ptr_) cudaFree(ptr_);
  }
  DevArray(const DevArray&) = delete;
  DevArray& operator=(const DevArray&) = delete;

  void Resize(size_t n) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = nullptr;
    n_ = n;
    if (cudaMalloc(&ptr_, std::max<size_t>(n, 1) * sizeof(T)) != cudaSuccess) ptr_ = nullptr;
    Poison();
  }
  void Upload(const std::vector<T>& v) {
    Resize(v.size());
    cudaMemcpy(ptr_, v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
  }
  std::vector<T> Download() const {
    std::vector<T> v(n_);
    cudaDeviceSynchronize();
    cudaMemcpy(v.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return v;
  }
  void Poison() {
    if (ptr_) cudaMemset(ptr_, 0xff, std::max<size_t>(n_, 1) * sizeof(T));
  }
  T* get() const { return ptr_; }
  size_t size() const { return n_; }

 private:
  T* ptr_ = nullptr;
  size_t n_ = 0;
};

float RoundBf16(float x);
__nv_bfloat16 ToBf16(float x);
float FromBf16(__nv_bfloat16 x);
float Bf16BytesToFloat(const uint8_t* p);  // two bytes of a bf16 in memory
std::vector<__nv_bfloat16> ToBf16(const std::vector<float>& v);
std::vector<float> FromBf16(const std::vector<__nv_bfloat16>& v);

// hi + lo of a GEMM input as floats (lo may be absent).
std::vector<float> GemmValue(const DevArray<__nv_bfloat16>& hi, const DevArray<__nv_bfloat16>* lo);

std::vector<float> RandomUniform(size_t n, std::mt19937_64& rng, float lo = -1.0f, float hi = 1.0f);

struct ErrorStats {
  double nmse = 0;       // sum (got - ref)^2 / sum ref^2
  double max_abs = 0;    // max |got - ref|
  double max_ref = 0;    // max |ref|
  size_t bad = 0;        // NaN / inf in got, or size mismatch
};
ErrorStats Compare(const std::vector<float>& got, const std::vector<float>& ref);

// One line of the results table, printed to stdout: "op  case  metrics  OK|FAIL".
void Report(const std::string& op, const std::string& shape, const std::string& metrics, bool ok);

// Checks stats against an NMSE bound and an elementwise bound, reports, and
// returns whether they held.
bool CheckClose(const std::string& op, const std::string& shape, const ErrorStats& e,
                double max_nmse, double max_abs);

}  // namespace dms::gpu_testing
