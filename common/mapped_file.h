// Read-only memory map of a whole file (checkpoint shards, tokenizer.json).
// Move-only; unmaps on destruction. Thread-safe to read once constructed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace dms {

class MappedFile {
 public:
  // Errors: NOT_FOUND if the file does not exist, INVALID_ARGUMENT
  // "<path>: not a regular file" (a FIFO, a device such as /dev/zero, a
  // directory), otherwise INTERNAL naming the path and the system error.
  static StatusOr<MappedFile> Open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

// Reads a whole (small) regular file into a string. NOT_FOUND, INVALID_ARGUMENT
// "<path>: not a regular file" or "<path>: file is larger than N bytes" (only
// max_bytes + 1 bytes are ever read), INTERNAL on a read error.
inline constexpr uint64_t kSmallFileMaxBytes = uint64_t{16} << 20;
StatusOr<std::string> ReadFileToString(const std::string& path,
                                       uint64_t max_bytes = kSmallFileMaxBytes);

}  // namespace dms
