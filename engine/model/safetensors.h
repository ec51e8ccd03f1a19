// safetensors reader over an mmapped file: 8-byte little-endian header length,
// JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the data. Every offset is validated against the file size, against the
// tensor's dtype and shape, and against the other tensors (no overlaps).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/mapped_file.h"
#include "common/status.h"

namespace dms {

enum class DType { kBF16, kF16, kF32 };

const char* DTypeName(DType dtype);  // "BF16", "F16", "F32" (safetensors spelling)
size_t DTypeSize(DType dtype);

// A read-only view of one tensor's bytes inside a mapped file. Row-major.
struct TensorView {
  std::string name;
  std::string file;  // path of the file holding it (for error messages)
  DType dtype = DType::kBF16;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;
  size_t nbytes = 0;

  int64_t numel() const;
  std::string ShapeString() const;  // "[4096, 128]"
};

// One entry of a parsed header. Offsets are relative to the start of the data
// section (right after the header), as in the file.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kBF16;
  std::vector<int64_t> shape;
  uint64_t begin = 0;
  uint64_t end = 0;
};

struct SafetensorsHeader {
  uint64_t data_start = 0;  // 8 + header length
  std::vector<SafetensorsEntry> tensors;  // in header order
  std::map<std::string, std::string> metadata;  // "__metadata__"
};

// Parses and validates the header of a whole safetensors file image
// (`data`, `size` bytes): a pure function of its input, no I/O (fuzzable).
// `source` prefixes every error message. Validates everything Open() lists.
StatusOr<SafetensorsHeader> ParseSafetensorsHeader(const uint8_t* data, size_t size,
                                                   const std::string& source);

class SafetensorsFile {
 public:
  // Errors (INVALID_ARGUMENT or DATA_LOSS, message starts with the path):
  //   file shorter than 8 bytes, header length past EOF, malformed JSON
  //   header, unknown dtype, offsets out of range / not matching shape*dtype,
  //   overlapping tensors.
  static StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const TensorView* Find(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  size_t size() const { return file_.size(); }

 private:
  MappedFile file_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace dms
