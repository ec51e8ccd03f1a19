// Owned device and pinned-host allocations. Everything the CUDA backend uses
// is allocated once when it is created (plain cudaMalloc, never managed
// memory); an Arena hands out aligned pieces of one allocation.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace dms {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // `what` names the buffer in the error ("KV pool", ...).
  Status Allocate(size_t bytes, const std::string& what);
  void* get() const { return ptr_; }
  size_t size() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  Status Allocate(size_t bytes, const std::string& what);
  void* get() const { return ptr_; }
  size_t size() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// An owned CUDA stream (non-blocking: it does not wait for the legacy
// default stream). Declare it before everything that enqueues on it.
class CudaStream {
 public:
  CudaStream() = default;
  ~CudaStream();
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  Status Create();
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
};

// Sub-allocation of one device buffer in two passes: Plan() sizes, then
// Allocate() and Take() in the same order.
class Arena {
 public:
  static constexpr size_t kAlign = 256;
  // Reserves `bytes` and returns its offset.
  size_t Plan(size_t bytes) {
    const size_t at = size_;
    size_ += (bytes + kAlign - 1) / kAlign * kAlign;
    return at;
  }
  size_t planned() const { return size_; }
  Status Allocate(const std::string& what) { return buffer_.Allocate(size_ > 0 ? size_ : kAlign, what); }
  template <typename T>
  T* At(size_t offset) const {
    return reinterpret_cast<T*>(static_cast<char*>(buffer_.get()) + offset);
  }

 private:
  size_t size_ = 0;
  DeviceBuffer buffer_;
};

}  // namespace dms
