// Sampling on the device for CudaBackend (kernels/sampling.h): a step's
// sampled rows come back as their tokens (and requested logprobs), not as
// vocabulary rows, and the engine thread sorts nothing.
//
// Penalty state lives on the device, one slot per sequence id: which tokens
// the prompt and output hold (repetition penalty) and how often each was
// generated (presence and frequency). SetHistory fills a slot from the host;
// every token LaunchSampleRows picks for a penalized row is recorded there.
// A slot is cleared when its sequence id is handed out again.
//
// Threading: the backend's driving thread. SetHistory and Clear synchronise
// the stream (once per request); Enqueue and Collect do not.
#pragma once

#include <cuda_runtime.h>

#include <span>
#include <vector>

#include "engine/core/backend.h"
#include "engine/cuda/device_memory.h"
#include "kernels/sampling.h"

namespace dms {

// One logit row of a step: its sequence and, when it samples, its parameters.
struct SampleRowRequest {
  SeqId seq = -1;
  const RowSampling* sampling = nullptr;  // null: the row is not sampled
};

class DeviceSampler {
 public:
  // Device memory for `max_sequences` penalty slots and `max_rows` rows a
  // launch, and the pinned staging both need.
  Status Init(int max_sequences, int max_rows, int vocab);
  size_t device_bytes() const { return penalties_buffer_.size() + rows_buffer_.size(); }

  // Slot `seq` := prompt tokens seen, output tokens seen and counted.
  Status SetHistory(SeqId seq, std::span<const int32_t> prompt, std::span<const int32_t> output,
                    cudaStream_t stream);
  // Slot `seq` := empty (a new sequence under this id).
  Status Clear(SeqId seq, cudaStream_t stream);

  // Enqueues the sampling of logits [rows.size(), vocab] (summaries: their
  // LaunchLogitSummary) when any row samples; copies the results to pinned
  // memory. Returns whether it launched anything.
  StatusOr<bool> Enqueue(std::span<const SampleRowRequest> rows, const float* logits,
                         const cuda::LogitRowSummary* summaries, cudaStream_t stream);
  // After the stream is synchronised: the sampled rows of the last Enqueue
  // (out[i] for rows[i] with sampling; the others untouched).
  void Collect(std::span<const SampleRowRequest> rows, SampledToken* out) const;

 private:
  int vocab_ = 0;
  int max_rows_ = 0;
  cuda::PenaltyState penalties_;
  DeviceBuffer penalties_buffer_;  // seen [slots, vocab] u8, counts [slots, vocab] i32
  DeviceBuffer rows_buffer_;       // params [max_rows], out [max_rows], scratch
  cuda::RowSamplingParams* d_params_ = nullptr;
  cuda::SampledRow* d_out_ = nullptr;
  void* d_scratch_ = nullptr;
  PinnedBuffer host_params_;   // [max_rows] cuda::RowSamplingParams
  PinnedBuffer host_out_;      // [max_rows] cuda::SampledRow
  PinnedBuffer host_history_;  // seen [vocab] u8 + counts [vocab] i32
};

}  // namespace dms
