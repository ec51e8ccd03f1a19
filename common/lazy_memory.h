// LazyMemory: an anonymous private mapping for pools sized to a share of host
// memory (KvBlockStorage). Pages read as zero and cost memory only once touched;
// unmapped on destruction. Move-only; not thread-safe to move, safe to read
// and write from several threads like any buffer.
//
// Why not new[]: in a release build malloc maps a block this large the same
// way, but the sanitizers' allocators poison (ASan) and scan (LSan) every byte
// of a heap block: a 20 GB pool took ~9 s to create and ~9 s to free under
// ASan, each server start of the deploy tests. A mapping is neither.
#pragma once

#include <cstddef>

namespace dms {

class LazyMemory {
 public:
  // An empty object when `bytes` is 0 or the mapping fails (see ok()).
  explicit LazyMemory(size_t bytes);
  LazyMemory() = default;
  LazyMemory(LazyMemory&& other) noexcept;
  LazyMemory& operator=(LazyMemory&& other) noexcept;
  LazyMemory(const LazyMemory&) = delete;
  LazyMemory& operator=(const LazyMemory&) = delete;
  ~LazyMemory();

  bool ok() const { return data_ != nullptr || size_ == 0; }
  void* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void Release();

  void* data_ = nullptr;
  size_t size_ = 0;  // requested bytes (also when the mapping failed)
};

}  // namespace dms
