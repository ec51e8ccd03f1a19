#include "engine/cuda/device_memory.h"

#include <utility>

#include "engine/cuda/cuda_status.h"

namespace dms {

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& o) noexcept
    : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    if (ptr_) cudaFree(ptr_);
    ptr_ = std::exchange(o.ptr_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
  }
  return *this;
}

Status DeviceBuffer::Allocate(size_t bytes, const std::string& what) {
  if (ptr_) cudaFree(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
  const cudaError_t err = cudaMalloc(&ptr_, bytes);
  if (err != cudaSuccess) {
    ptr_ = nullptr;
    cudaGetLastError();  // clear the sticky-free error state
    return CudaStatus(err, "cudaMalloc of " + std::to_string(bytes) + " bytes for " + what);
  }
  bytes_ = bytes;
  return OkStatus();
}

CudaStream::~CudaStream() {
  if (stream_) {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }
}

Status CudaStream::Create() {
  return CudaStatus(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
}

PinnedBuffer::~PinnedBuffer() {
  if (ptr_) cudaFreeHost(ptr_);
}

Status PinnedBuffer::Allocate(size_t bytes, const std::string& what) {
  if (ptr_) cudaFreeHost(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
  const cudaError_t err = cudaMallocHost(&ptr_, bytes > 0 ? bytes : 1);
  if (err != cudaSuccess) {
    ptr_ = nullptr;
    cudaGetLastError();
    return CudaStatus(err, "cudaMallocHost of " + std::to_string(bytes) + " bytes for " + what);
  }
  bytes_ = bytes;
  return OkStatus();
}

}  // namespace dms
