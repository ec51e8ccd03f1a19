// The row sampler's per-sequence penalty state (kernels/sampling.h
// PenaltyState): clearing a slot and marking prompt tokens seen. The sampler
// kernel itself records sampled tokens.
#include "kernels/sampling.h"

namespace dms::cuda {
namespace {

__global__ void MarkSeenKernel(uint8_t* seen, int vocab, const int32_t* tokens, int n) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    const int32_t t = tokens[i];
    if (t >= 0 && t < vocab) seen[t] = 1;
  }
}

bool ValidSlot(const PenaltyState& state, int slot, int vocab) {
  return state.seen && state.counts && vocab > 0 && slot >= 0 && slot < state.num_slots;
}

}  // namespace

size_t PenaltyStateBytes(int num_slots, int vocab) {
  return static_cast<size_t>(num_slots > 0 ? num_slots : 0) * (vocab > 0 ? vocab : 0) *
         (sizeof(uint8_t) + sizeof(int32_t));
}

cudaError_t ClearPenaltySlot(const PenaltyState& state, int slot, int vocab, cudaStream_t stream) {
  if (!ValidSlot(state, slot, vocab)) return cudaErrorInvalidValue;
  const size_t at = static_cast<size_t>(slot) * vocab;
  const cudaError_t err = cudaMemsetAsync(state.seen + at, 0, vocab, stream);
  if (err != cudaSuccess) return err;
  return cudaMemsetAsync(state.counts + at, 0, static_cast<size_t>(vocab) * sizeof(int32_t),
                         stream);
}

cudaError_t LaunchMarkSeen(const PenaltyState& state, int slot, int vocab, const int32_t* tokens,
                           int n, cudaStream_t stream) {
  if (n <= 0) return cudaSuccess;
  if (!ValidSlot(state, slot, vocab) || !tokens) return cudaErrorInvalidValue;
  const int threads = 256,
            blocks = (n + threads - 1) / threads < 1024 ? (n + threads - 1) / threads : 1024;
  MarkSeenKernel<<<blocks, threads, 0, stream>>>(state.seen + static_cast<size_t>(slot) * vocab,
                                                 vocab, tokens, n);
  return cudaGetLastError();
}

}  // namespace dms::cuda
