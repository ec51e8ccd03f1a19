#include "kernels/launch.cuh"

namespace dms::cuda {
namespace {

thread_local unsigned t_groups = 0;  // the innermost scope's groups; 0 outside any

constexpr unsigned Bit(LaunchGroup g) { return 1u << static_cast<unsigned>(g); }

// Programmatic launch needs sm_90 or later (read once a process).
bool DeviceSupportsPdl() {
  static const bool ok = [] {
    int device = 0, major = 0;
    if (cudaGetDevice(&device) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return major >= 9;
  }();
  return ok;
}

}  // namespace

ProgrammaticLaunchScope::ProgrammaticLaunchScope(bool on, unsigned groups) : saved_(t_groups) {
  t_groups = on ? groups : 0;
}

ProgrammaticLaunchScope::~ProgrammaticLaunchScope() { t_groups = saved_; }

bool ProgrammaticLaunchEnabled(LaunchGroup group) {
  return (t_groups & Bit(group)) != 0 && DeviceSupportsPdl();
}

}  // namespace dms::cuda
