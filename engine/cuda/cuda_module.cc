// The CUDA module's one export (see cuda_module_api.h): the main binaries
// dlopen libdms_cuda.so and call this to create a CudaBackend.
#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/cuda_module_api.h"

extern "C" __attribute__((visibility("default"))) dms::Backend* DmsCreateCudaBackend(
    const dms::CudaModuleArgs* args, dms::Status* status) {
  if (args == nullptr || status == nullptr) return nullptr;
  if (args->abi_version != dms::kCudaModuleAbiVersion) {
    *status = dms::FailedPreconditionError(
        "backend 'cuda': libdms_cuda.so is from another build (ABI " +
        std::to_string(dms::kCudaModuleAbiVersion) + ", caller " +
        std::to_string(args->abi_version) + ")");
    return nullptr;
  }
  dms::StatusOr<std::unique_ptr<dms::CudaBackend>> backend =
      dms::CudaBackend::Create(args->checkpoint, args->options);
  if (!backend.ok()) {
    *status = backend.status();
    return nullptr;
  }
  *status = dms::OkStatus();
  return backend->release();
}
