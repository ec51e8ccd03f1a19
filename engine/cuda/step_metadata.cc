#include "engine/cuda/step_metadata.h"

#include "engine/cuda/cuda_status.h"

namespace dms {

Status StepMetadata::Init(int max_tokens, int max_chunks, int max_update_pairs) {
  max_tokens_ = max_tokens;
  max_chunks_ = max_chunks;
  max_update_pairs_ = max_update_pairs;
  size_t at = 0;
  auto plan = [&](size_t bytes) {
    const size_t off = at;
    at += (bytes + 255) / 256 * 256;
    return off;
  };
  tokens_ = plan(sizeof(int32_t) * max_tokens);
  positions_ = plan(sizeof(int32_t) * max_tokens);
  row_chunk_ = plan(sizeof(int32_t) * max_tokens);
  chunks_ = plan(sizeof(cuda::StepChunk) * max_chunks);
  tiles_ = plan(sizeof(cuda::AttnTile) * max_tokens);
  logit_rows_ = plan(sizeof(int32_t) * max_tokens);
  updates_ = plan(sizeof(int32_t) * 2 * static_cast<size_t>(max_update_pairs));
  DMS_RETURN_IF_ERROR(host_.Allocate(at, "step metadata (host)"));
  return device_.Allocate(at, "step metadata");
}

Status StepMetadata::Copy(cudaStream_t stream, size_t off, size_t bytes) {
  if (bytes == 0) return OkStatus();
  return CudaStatus(cudaMemcpyAsync(static_cast<char*>(device_.get()) + off,
                                    static_cast<char*>(host_.get()) + off, bytes,
                                    cudaMemcpyHostToDevice, stream),
                    "step metadata upload");
}

Status StepMetadata::Upload(cudaStream_t stream, int num_tokens, int num_chunks, int num_tiles,
                            int num_logit_rows, int num_update_pairs) {
  DMS_RETURN_IF_ERROR(Copy(stream, tokens_, sizeof(int32_t) * num_tokens));
  DMS_RETURN_IF_ERROR(Copy(stream, positions_, sizeof(int32_t) * num_tokens));
  DMS_RETURN_IF_ERROR(Copy(stream, row_chunk_, sizeof(int32_t) * num_tokens));
  DMS_RETURN_IF_ERROR(Copy(stream, chunks_, sizeof(cuda::StepChunk) * num_chunks));
  DMS_RETURN_IF_ERROR(Copy(stream, tiles_, sizeof(cuda::AttnTile) * num_tiles));
  DMS_RETURN_IF_ERROR(Copy(stream, logit_rows_, sizeof(int32_t) * num_logit_rows));
  return Copy(stream, updates_, sizeof(int32_t) * 2 * static_cast<size_t>(num_update_pairs));
}

}  // namespace dms
