#include "kernels/launch.cuh"

#include <cstdlib>
#include <iterator>
#include <sstream>
#include <string>

namespace dms::cuda {
namespace {

thread_local bool t_in_scope = false;

constexpr unsigned Bit(LaunchGroup g) { return 1u << static_cast<unsigned>(g); }

// DMS_PDL as a mask of LaunchGroup bits (launch.cuh); 0 before sm_90.
unsigned EnabledGroups() {
  int device = 0, major = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  if (major < 9) return 0;
  const char* env = std::getenv("DMS_PDL");
  const std::string setting = env ? env : "1";
  if (setting == "0") return 0;
  if (setting == "all" || setting == "1") return ~0u;
  static constexpr const char* kNames[] = {"gemv",      "norm",   "epilogue",
                                           "attention", "append", "elementwise"};
  unsigned mask = 0;
  std::stringstream list(setting);
  for (std::string name; std::getline(list, name, ',');) {
    for (unsigned g = 0; g < std::size(kNames); ++g) {
      if (name == kNames[g]) mask |= 1u << g;
    }
  }
  return mask;
}

}  // namespace

ProgrammaticLaunchScope::ProgrammaticLaunchScope(bool on) : saved_(t_in_scope) {
  t_in_scope = on;
}

ProgrammaticLaunchScope::~ProgrammaticLaunchScope() { t_in_scope = saved_; }

bool ProgrammaticLaunchEnabled(LaunchGroup group) {
  if (!t_in_scope) return false;
  static const unsigned enabled = EnabledGroups();
  return (enabled & Bit(group)) != 0;
}

}  // namespace dms::cuda
