#include "kernels/launch.cuh"

#include <cstdlib>
#include <cstring>
#include <string>

namespace dms::cuda {
namespace {
thread_local bool t_in_scope = false;
}  // namespace

ProgrammaticLaunchScope::ProgrammaticLaunchScope(bool on) : saved_(t_in_scope) {
  t_in_scope = on;
}

ProgrammaticLaunchScope::~ProgrammaticLaunchScope() { t_in_scope = saved_; }

bool ProgrammaticLaunchEnabled(const char* group) {
  if (!t_in_scope) return false;
  static const bool sm90 = [] {
    int device = 0, major = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return major >= 9;
  }();
  static const std::string setting = [] {
    const char* env = std::getenv("DMS_PDL");
    return std::string(env ? env : "1");
  }();
  if (!sm90 || setting == "0") return false;
  if (setting == "all") return true;
  if (setting == "1") return std::strcmp(group, "attention") != 0;
  return ("," + setting + ",").find("," + std::string(group) + ",") != std::string::npos;
}

}  // namespace dms::cuda
