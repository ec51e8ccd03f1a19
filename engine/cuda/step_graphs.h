// Decode steps replayed as CUDA graphs. A decode step launches ~470 kernels
// (13 a layer); launched one by one from the host they leave the GPU idle
// between them. The step's kernels read everything that changes between
// steps (tokens, positions, chunk and tile tables, KV lengths, page tables)
// from device buffers at fixed addresses, so one captured graph per step
// shape serves every later step of that shape.
#pragma once

#include <cuda_runtime.h>

#include <compare>
#include <functional>
#include <map>

#include "common/status.h"

namespace dms {

class StepGraphs {
 public:
  // Every host-side value the step's launches bake in.
  struct Key {
    int tokens = 0, chunks = 0, simt_tiles = 0, mma_tiles = 0, splits = 0, logit_rows = 0;
    auto operator<=>(const Key&) const = default;
  };

  StepGraphs() = default;
  ~StepGraphs() { Clear(); }
  StepGraphs(const StepGraphs&) = delete;
  StepGraphs& operator=(const StepGraphs&) = delete;

  // Launches the graph of `key` on `stream`; a new shape is first captured
  // from what `enqueue` puts on the stream (nothing runs during capture).
  Status Launch(const Key& key, cudaStream_t stream, const std::function<Status()>& enqueue);
  void Clear();
  size_t size() const { return graphs_.size(); }

 private:
  static constexpr size_t kMaxGraphs = 64;  // shapes kept; all dropped when full
  std::map<Key, cudaGraphExec_t> graphs_;
};

}  // namespace dms
