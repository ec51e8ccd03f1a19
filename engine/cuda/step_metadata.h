// The per-step metadata the kernels read: token ids, positions, chunk and
// attention-tile tables, the rows whose logits are wanted, and the queued
// page-table writes. Built on the host in pinned memory and copied to device
// buffers at FIXED addresses (sized for the largest step), so that a later
// issue can capture the step loop in a CUDA graph.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "engine/cuda/device_memory.h"
#include "common/status.h"
#include "kernels/kernel_types.h"

namespace dms {

class StepMetadata {
 public:
  Status Init(int max_tokens, int max_chunks, int max_update_pairs);

  // Host (pinned) views to fill.
  int32_t* tokens() { return host<int32_t>(tokens_); }         // [N]
  int32_t* positions() { return host<int32_t>(positions_); }   // [N]
  int32_t* row_chunk() { return host<int32_t>(row_chunk_); }   // [N]
  cuda::StepChunk* chunks() { return host<cuda::StepChunk>(chunks_); }
  cuda::AttnTile* tiles() { return host<cuda::AttnTile>(tiles_); }
  int32_t* logit_rows() { return host<int32_t>(logit_rows_); }  // [rows]
  int32_t* updates() { return host<int32_t>(updates_); }        // [2 * pairs]

  int max_tokens() const { return max_tokens_; }
  int max_chunks() const { return max_chunks_; }
  int max_update_pairs() const { return max_update_pairs_; }

  // Copies the filled prefixes to the device on `stream`.
  Status Upload(cudaStream_t stream, int num_tokens, int num_chunks, int num_tiles,
                int num_logit_rows, int num_update_pairs);

  // Device views.
  const int32_t* d_tokens() const { return dev<int32_t>(tokens_); }
  const int32_t* d_positions() const { return dev<int32_t>(positions_); }
  const int32_t* d_row_chunk() const { return dev<int32_t>(row_chunk_); }
  const cuda::StepChunk* d_chunks() const { return dev<cuda::StepChunk>(chunks_); }
  const cuda::AttnTile* d_tiles() const { return dev<cuda::AttnTile>(tiles_); }
  const int32_t* d_logit_rows() const { return dev<int32_t>(logit_rows_); }
  const int32_t* d_updates() const { return dev<int32_t>(updates_); }

 private:
  template <typename T>
  T* host(size_t off) { return reinterpret_cast<T*>(static_cast<char*>(host_.get()) + off); }
  template <typename T>
  const T* dev(size_t off) const {
    return reinterpret_cast<const T*>(static_cast<const char*>(device_.get()) + off);
  }
  Status Copy(cudaStream_t stream, size_t off, size_t bytes);

  int max_tokens_ = 0, max_chunks_ = 0, max_update_pairs_ = 0;
  size_t tokens_ = 0, positions_ = 0, row_chunk_ = 0, chunks_ = 0, tiles_ = 0, logit_rows_ = 0,
         updates_ = 0;
  PinnedBuffer host_;
  DeviceBuffer device_;
};

}  // namespace dms
