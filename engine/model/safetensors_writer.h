// Streaming safetensors writer. Tensor bytes come from a fill callback, one
// chunk at a time, so a 16 GB checkpoint never sits in memory; chunks are
// produced and written by several threads at once (pwrite at fixed offsets),
// so the output is byte-identical whatever the thread count.
//
// Files are laid out as Hugging Face / the safetensors library write them:
// 8-byte little-endian header length, compact JSON header ("__metadata__"
// first, then tensors sorted by name, each {dtype, shape, data_offsets})
// padded with spaces to a multiple of 8, then the data in header order.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/model/safetensors.h"
#include "common/status.h"

namespace dms {

struct TensorSpec {
  std::string name;
  DType dtype = DType::kBF16;
  std::vector<int64_t> shape;

  uint64_t nbytes() const;
};

// Writes bytes [byte_offset, byte_offset + nbytes) of tensors[tensor_index]
// into `out`. Called concurrently for disjoint ranges: must be thread-safe and
// a pure function of its arguments. Offsets and sizes are multiples of the
// dtype size.
using TensorFillFn =
    std::function<void(size_t tensor_index, uint64_t byte_offset, size_t nbytes, uint8_t* out)>;

struct SafetensorsWriteOptions {
  int threads = 1;
  size_t chunk_bytes = size_t{8} << 20;  // per fill call; memory is threads * chunk_bytes
  // Hugging Face shards by bytes of tensor data; Qwen3-8B ships 5 shards of <= 4 GB.
  uint64_t max_shard_bytes = 4'000'000'000;
  std::map<std::string, std::string> metadata = {{"format", "pt"}};
};

// The header bytes (length prefix included) for `tensors` laid out in name order.
std::string EncodeSafetensorsHeader(const std::vector<TensorSpec>& tensors,
                                    const std::map<std::string, std::string>& metadata);

// Writes one safetensors file holding all `tensors` (written to PATH.tmp, then
// renamed, so a failed run never leaves a plausible-looking file behind).
Status WriteSafetensorsFile(const std::string& path, const std::vector<TensorSpec>& tensors,
                            const TensorFillFn& fill, const SafetensorsWriteOptions& options);

// Groups tensors (in the given order) into shards of at most max_shard_bytes,
// as transformers' save_pretrained does: a tensor that does not fit in the
// current shard starts a new one; a tensor larger than the limit gets its own.
std::vector<std::vector<size_t>> PlanShards(const std::vector<TensorSpec>& tensors,
                                            uint64_t max_shard_bytes);

// Writes DIR/model.safetensors when everything fits in one shard, else
// DIR/model-0000i-of-0000N.safetensors plus DIR/model.safetensors.index.json.
// Returns the file names written (index last).
StatusOr<std::vector<std::string>> WriteSafetensorsCheckpoint(
    const std::string& dir, const std::vector<TensorSpec>& tensors, const TensorFillFn& fill,
    const SafetensorsWriteOptions& options);

}  // namespace dms
