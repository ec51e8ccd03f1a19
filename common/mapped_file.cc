#include "common/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace dms {

namespace {

// Opens a regular file for reading; *size gets its size. O_NONBLOCK so that
// opening a FIFO cannot wait for a writer before it is refused.
StatusOr<int> OpenRegularFile(const std::string& path, uint64_t* size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return NotFoundError(path + ": no such file");
    return InternalError(path + ": cannot open: " + std::strerror(errno));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return InternalError(path + ": cannot stat: " + std::strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgumentError(path + ": not a regular file");
  }
  *size = static_cast<uint64_t>(st.st_size);
  return fd;
}

}  // namespace

StatusOr<MappedFile> MappedFile::Open(const std::string& path) {
  uint64_t size = 0;
  DMS_ASSIGN_OR_RETURN(int fd, OpenRegularFile(path, &size));
  MappedFile file;
  file.path_ = path;
  file.size_ = static_cast<size_t>(size);
  if (file.size_ > 0) {
    void* p = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      return InternalError(path + ": cannot mmap: " + std::strerror(err));
    }
    file.data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return file;
}

MappedFile::MappedFile(MappedFile&& other) noexcept
    : data_(other.data_), size_(other.size_), path_(std::move(other.path_)) {
  other.data_ = nullptr;
  other.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
    data_ = other.data_;
    size_ = other.size_;
    path_ = std::move(other.path_);
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

MappedFile::~MappedFile() {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

StatusOr<std::string> ReadFileToString(const std::string& path, uint64_t max_bytes) {
  max_bytes = std::min<uint64_t>(max_bytes, uint64_t{1} << 62);  // max_bytes + 1 fits
  uint64_t size = 0;
  DMS_ASSIGN_OR_RETURN(int fd, OpenRegularFile(path, &size));
  const std::string too_large =
      path + ": file is larger than " + std::to_string(max_bytes) + " bytes";
  if (size > max_bytes) {
    ::close(fd);
    return InvalidArgumentError(too_large);
  }
  // The size can change while reading (or be 0, as for /proc files): read
  // until EOF, at most one byte past the limit.
  std::string out;
  out.resize(static_cast<size_t>(size) + 1);
  size_t have = 0;
  while (true) {
    if (have == out.size()) {
      if (have > max_bytes) break;
      out.resize(static_cast<size_t>(std::min<uint64_t>(max_bytes + 1, 2 * have + 4096)));
    }
    const ssize_t n = ::read(fd, out.data() + have, out.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return InternalError(path + ": cannot read: " + std::strerror(err));
    }
    if (n == 0) break;
    have += static_cast<size_t>(n);
  }
  ::close(fd);
  if (have > max_bytes) return InvalidArgumentError(too_large);
  out.resize(have);
  return out;
}

}  // namespace dms
