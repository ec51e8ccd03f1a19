#include "tests/gpu/gpu_test_util.h"

#include <cmath>
#include <cstdio>

#include "common/half.h"

namespace dms::gpu_testing {

std::string NoGpuReason() {
  static const std::string reason = [] {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      cudaGetLastError();
      return std::string(cudaGetErrorString(err));
    }
    return count > 0 ? std::string() : std::string("0 devices");
  }();
  return reason;
}

float RoundBf16(float x) { return Bf16ToFloat(FloatToBf16(x)); }

__nv_bfloat16 ToBf16(float x) {
  __nv_bfloat16_raw raw;
  raw.x = FloatToBf16(x);
  return __nv_bfloat16(raw);
}

float FromBf16(__nv_bfloat16 x) { return Bf16ToFloat(static_cast<__nv_bfloat16_raw>(x).x); }

float Bf16BytesToFloat(const uint8_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return Bf16ToFloat(bits);
}

std::vector<__nv_bfloat16> ToBf16(const std::vector<float>& v) {
  std::vector<__nv_bfloat16> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = ToBf16(v[i]);
  return out;
}

std::vector<float> FromBf16(const std::vector<__nv_bfloat16>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = FromBf16(v[i]);
  return out;
}

std::vector<float> GemmValue(const DevArray<__nv_bfloat16>& hi, const DevArray<__nv_bfloat16>* lo) {
  std::vector<float> v = FromBf16(hi.Download());
  if (lo) {
    const std::vector<float> l = FromBf16(lo->Download());
    for (size_t i = 0; i < v.size(); ++i) v[i] += l[i];
  }
  return v;
}

std::vector<float> RandomUniform(size_t n, std::mt19937_64& rng, float lo, float hi) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

ErrorStats Compare(const std::vector<float>& got, const std::vector<float>& ref) {
  ErrorStats e;
  if (got.size() != ref.size()) {
    e.bad = std::max(got.size(), ref.size());
    return e;
  }
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) {
      ++e.bad;
      continue;
    }
    const double d = static_cast<double>(got[i]) - ref[i];
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
    e.max_abs = std::max(e.max_abs, std::abs(d));
    e.max_ref = std::max(e.max_ref, std::abs(static_cast<double>(ref[i])));
  }
  e.nmse = den > 0 ? num / den : num;
  return e;
}

void Report(const std::string& op, const std::string& shape, const std::string& metrics, bool ok) {
  std::printf("  %-16s %-58s %-44s %s\n", op.c_str(), shape.c_str(), metrics.c_str(),
              ok ? "OK" : "FAIL");
  std::fflush(stdout);
}

bool CheckClose(const std::string& op, const std::string& shape, const ErrorStats& e,
                double max_nmse, double max_abs) {
  const bool ok = e.bad == 0 && e.nmse <= max_nmse && e.max_abs <= max_abs;
  char buf[160];
  std::snprintf(buf, sizeof(buf), "nmse=%.2e max|d|=%.2e bad=%zu", e.nmse, e.max_abs, e.bad);
  Report(op, shape, buf, ok);
  return ok;
}

}  // namespace dms::gpu_testing
