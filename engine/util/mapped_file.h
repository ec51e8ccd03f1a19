// Read-only memory map of a whole file (checkpoint shards, tokenizer.json).
// Move-only; unmaps on destruction. Thread-safe to read once constructed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/util/status.h"

namespace dms {

class MappedFile {
 public:
  // Errors: NOT_FOUND if the file does not exist, otherwise INTERNAL naming
  // the path and the system error.
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

// Reads a whole (small) file into a string. NOT_FOUND / INTERNAL on failure.
StatusOr<std::string> ReadFileToString(const std::string& path);

}  // namespace dms
