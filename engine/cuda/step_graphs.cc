#include "engine/cuda/step_graphs.h"

#include "engine/cuda/cuda_status.h"

namespace dms {

void StepGraphs::Clear() {
  for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
  graphs_.clear();
}

Status StepGraphs::Launch(const Key& key, cudaStream_t stream,
                          const std::function<Status()>& enqueue) {
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    if (graphs_.size() >= kMaxGraphs) Clear();
    // Relaxed: cuBLAS may query attributes while it is being captured.
    DMS_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed),
                             "decode graph capture");
    const Status st = enqueue();
    cudaGraph_t graph = nullptr;
    const cudaError_t end = cudaStreamEndCapture(stream, &graph);
    if (!st.ok() || end != cudaSuccess) {
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();  // the failed capture's error is reported below, once
      return st.ok() ? CudaStatus(end, "decode graph capture") : st;
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    DMS_CUDA_RETURN_IF_ERROR(inst, "decode graph instantiation");
    it = graphs_.emplace(key, exec).first;
  }
  return CudaStatus(cudaGraphLaunch(it->second, stream), "decode graph launch");
}

}  // namespace dms
