#include "engine/backends/backend_factory.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "engine/cpu/cpu_backend.h"
#include "engine/cuda/cuda_module_api.h"

namespace dms {
namespace {

// Where libdms_cuda.so may be: $DMS_CUDA_MODULE, beside the executable's
// ../lib (the build tree and an install), beside the executable, then the
// dynamic loader's search path.
std::vector<std::string> ModuleCandidates() {
  if (const char* env = std::getenv("DMS_CUDA_MODULE"); env && *env) return {env};
  std::vector<std::string> out;
  std::error_code ec;
  const std::filesystem::path exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back((exe.parent_path().parent_path() / "lib" / kCudaModuleFile).string());
    out.push_back((exe.parent_path() / kCudaModuleFile).string());
  }
  out.push_back(kCudaModuleFile);
  return out;
}

// Loads the module once per process (never unloaded: backends it made may
// outlive any caller).
StatusOr<CudaCreateBackendFn> LoadCudaModule() {
  static std::once_flag once;
  static CudaCreateBackendFn fn = nullptr;
  static std::string error;
  std::call_once(once, [] {
    std::string first_error;
    for (const std::string& path : ModuleCandidates()) {
      if (path.find('/') != std::string::npos && !std::filesystem::exists(path)) {
        if (first_error.empty()) first_error = path + ": no such file";
        continue;
      }
      void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!handle) {
        if (first_error.empty()) first_error = dlerror();
        continue;
      }
      fn = reinterpret_cast<CudaCreateBackendFn>(dlsym(handle, kCudaModuleSymbol));
      if (!fn) error = path + " has no " + kCudaModuleSymbol;
      return;
    }
    error = "cannot load the CUDA module " + std::string(kCudaModuleFile) + " (" +
            (first_error.empty() ? "not found" : first_error) +
            "); build with -DDMS_CUDA=ON or set DMS_CUDA_MODULE";
  });
  if (!fn) return UnavailableError("backend 'cuda': " + error);
  return fn;
}

StatusOr<std::unique_ptr<Backend>> CreateCudaBackend(std::shared_ptr<const Checkpoint> checkpoint,
                                                     const BackendOptions& options) {
  DMS_ASSIGN_OR_RETURN(CudaCreateBackendFn create, LoadCudaModule());
  CudaModuleArgs args;
  args.abi_version = kCudaModuleAbiVersion;
  args.checkpoint = std::move(checkpoint);
  args.options.kv_block_size = options.kv_block_size;
  args.options.kv_cache_bytes = options.kv_cache_bytes;
  args.options.kv_memory_fraction = options.kv_memory_fraction;
  args.options.kv_num_blocks = options.kv_num_blocks;
  args.options.force_dense = options.force_dense;
  args.options.precision = options.precision;
  args.options.device_sampling = options.device_sampling;
  args.options.tuning = options.cuda_tuning;
  if (options.max_batch_tokens > 0) args.options.max_batch_tokens = options.max_batch_tokens;
  if (options.max_sequences > 0) args.options.max_sequences = options.max_sequences;
  Status status;
  Backend* backend = create(&args, &status);
  if (!backend) return status.ok() ? InternalError("backend 'cuda': module returned nothing") : status;
  return std::unique_ptr<Backend>(backend);
}

StatusOr<std::unique_ptr<Backend>> CreateCpuBackend(std::shared_ptr<const Checkpoint> checkpoint,
                                                    const BackendOptions& options) {
  CpuBackendOptions cpu;
  cpu.num_threads = options.num_threads;
  cpu.kv_block_size = options.kv_block_size;
  cpu.kv_cache_bytes = options.kv_cache_bytes;
  cpu.kv_num_blocks = options.kv_num_blocks;
  cpu.force_dense = options.force_dense;
  DMS_ASSIGN_OR_RETURN(std::unique_ptr<CpuBackend> backend, CpuBackend::Create(std::move(checkpoint), cpu));
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace

StatusOr<std::unique_ptr<Backend>> CreateBackend(std::shared_ptr<const Checkpoint> checkpoint,
                                                 const BackendOptions& options) {
  if (options.kind != "cpu" && options.kind != "cuda" && options.kind != "auto") {
    return InvalidArgumentError("unknown backend '" + options.kind + "' (expected cpu, cuda or auto)");
  }
  if (options.kind == "cuda") return CreateCudaBackend(std::move(checkpoint), options);
  if (options.kind == "auto") {
    StatusOr<std::unique_ptr<Backend>> cuda = CreateCudaBackend(checkpoint, options);
    if (cuda.ok()) return cuda;
    // No module or no GPU: the CPU backend, saying why once.
    std::fprintf(stderr, "dms: backend auto: using cpu (%s)\n", cuda.status().message().c_str());
  }
  return CreateCpuBackend(std::move(checkpoint), options);
}

}  // namespace dms
