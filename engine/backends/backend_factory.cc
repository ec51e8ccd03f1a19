#include "engine/backends/backend_factory.h"

#include "engine/cpu/cpu_backend.h"

namespace dms {

StatusOr<std::unique_ptr<Backend>> CreateBackend(std::shared_ptr<const Checkpoint> checkpoint,
                                                 const BackendOptions& options) {
  if (options.kind != "cpu" && options.kind != "cuda" && options.kind != "auto") {
    return InvalidArgumentError("unknown backend '" + options.kind + "' (expected cpu, cuda or auto)");
  }
  if (options.kind == "cuda") {
    return UnavailableError("backend 'cuda' is not available in this build (the CUDA module is not built yet)");
  }
  CpuBackendOptions cpu;
  cpu.num_threads = options.num_threads;
  cpu.kv_block_size = options.kv_block_size;
  cpu.kv_cache_bytes = options.kv_cache_bytes;
  cpu.kv_num_blocks = options.kv_num_blocks;
  cpu.force_dense = options.force_dense;
  DMS_ASSIGN_OR_RETURN(std::unique_ptr<CpuBackend> backend, CpuBackend::Create(std::move(checkpoint), cpu));
  return std::unique_ptr<Backend>(std::move(backend));
}

}  // namespace dms
