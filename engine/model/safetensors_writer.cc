#include "engine/model/safetensors_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <numeric>
#include <thread>

namespace dms {

uint64_t TensorSpec::nbytes() const {
  uint64_t n = DTypeSize(dtype);
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

namespace {

// Tensor indices of `members` in file order (by name, as the safetensors library writes).
std::vector<size_t> FileOrder(const std::vector<TensorSpec>& all, std::vector<size_t> members) {
  std::sort(members.begin(), members.end(),
            [&](size_t a, size_t b) { return all[a].name < all[b].name; });
  return members;
}

std::string EncodeHeader(const std::vector<TensorSpec>& all, const std::vector<size_t>& order,
                         const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json j;
  if (!metadata.empty()) j["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i : order) {
    const TensorSpec& t = all[i];
    nlohmann::ordered_json e;
    e["dtype"] = DTypeName(t.dtype);
    e["shape"] = t.shape;
    e["data_offsets"] = {offset, offset + t.nbytes()};
    offset += t.nbytes();
    j[t.name] = std::move(e);
  }
  std::string text = j.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data starts 8-byte aligned
  std::string out(8, '\0');
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + text;
}

Status WriteAll(int fd, const uint8_t* data, size_t size, uint64_t offset,
                const std::string& path) {
  while (size > 0) {
    ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return InternalError(path + ": write failed: " + std::strerror(errno));
    }
    data += n;
    size -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return OkStatus();
}

struct Chunk {
  size_t tensor;
  uint64_t tensor_offset;
  size_t nbytes;
  uint64_t file_offset;
};

Status WriteFile(const std::string& path, const std::vector<TensorSpec>& all,
                 const std::vector<size_t>& members, const TensorFillFn& fill,
                 const SafetensorsWriteOptions& opt) {
  const std::vector<size_t> order = FileOrder(all, members);
  const std::string header = EncodeHeader(all, order, opt.metadata);
  // Chunk size: a multiple of 8 so every chunk starts on an element boundary.
  const size_t chunk_bytes = std::max<size_t>(8, opt.chunk_bytes / 8 * 8);
  std::vector<Chunk> chunks;
  uint64_t file_offset = header.size();
  for (size_t i : order) {
    const uint64_t n = all[i].nbytes();
    for (uint64_t off = 0; off < n; off += chunk_bytes) {
      size_t len = static_cast<size_t>(std::min<uint64_t>(chunk_bytes, n - off));
      chunks.push_back({i, off, len, file_offset + off});
    }
    file_offset += n;
  }

  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return InternalError(tmp + ": cannot create: " + std::strerror(errno));
  Status status =
      WriteAll(fd, reinterpret_cast<const uint8_t*>(header.data()), header.size(), 0, tmp);
  if (status.ok() && ::ftruncate(fd, static_cast<off_t>(file_offset)) != 0) {
    status = InternalError(tmp + ": cannot resize: " + std::strerror(errno));
  }

  std::atomic<size_t> next{0};
  std::atomic<bool> failed{!status.ok()};
  std::mutex mu;
  auto worker = [&] {
    std::vector<uint8_t> buf(std::min<size_t>(chunk_bytes, 1 + file_offset));
    for (size_t c = next++; c < chunks.size() && !failed; c = next++) {
      const Chunk& ch = chunks[c];
      fill(ch.tensor, ch.tensor_offset, ch.nbytes, buf.data());
      Status s = WriteAll(fd, buf.data(), ch.nbytes, ch.file_offset, tmp);
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (!failed.exchange(true)) status = s;
      }
    }
  };
  const int threads = std::max(1, std::min<int>(opt.threads, static_cast<int>(chunks.size())));
  if (threads <= 1) {
    worker();
  } else {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
    for (auto& th : pool) th.join();
  }
  if (::close(fd) != 0 && status.ok()) {
    status = InternalError(tmp + ": close failed: " + std::strerror(errno));
  }
  if (status.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    status = InternalError(path + ": cannot rename from " + tmp + ": " + std::strerror(errno));
  }
  if (!status.ok()) std::remove(tmp.c_str());
  return status;
}

Status WriteTextFile(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return InternalError(tmp + ": cannot create: " + std::strerror(errno));
  Status s = WriteAll(fd, reinterpret_cast<const uint8_t*>(text.data()), text.size(), 0, tmp);
  ::close(fd);
  if (s.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    s = InternalError(path + ": cannot rename from " + tmp + ": " + std::strerror(errno));
  }
  return s;
}

std::string ShardName(size_t i, size_t n) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "model-%05zu-of-%05zu.safetensors", i + 1, n);
  return buf;
}

}  // namespace

std::string EncodeSafetensorsHeader(const std::vector<TensorSpec>& tensors,
                                    const std::map<std::string, std::string>& metadata) {
  std::vector<size_t> all(tensors.size());
  std::iota(all.begin(), all.end(), 0);
  return EncodeHeader(tensors, FileOrder(tensors, all), metadata);
}

Status WriteSafetensorsFile(const std::string& path, const std::vector<TensorSpec>& tensors,
                            const TensorFillFn& fill, const SafetensorsWriteOptions& options) {
  std::vector<size_t> all(tensors.size());
  std::iota(all.begin(), all.end(), 0);
  return WriteFile(path, tensors, all, fill, options);
}

std::vector<std::vector<size_t>> PlanShards(const std::vector<TensorSpec>& tensors,
                                            uint64_t max_shard_bytes) {
  std::vector<std::vector<size_t>> shards;
  uint64_t current = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t n = tensors[i].nbytes();
    if (shards.empty() || (!shards.back().empty() && current + n > max_shard_bytes)) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(i);
    current += n;
  }
  return shards;
}

StatusOr<std::vector<std::string>> WriteSafetensorsCheckpoint(
    const std::string& dir, const std::vector<TensorSpec>& tensors, const TensorFillFn& fill,
    const SafetensorsWriteOptions& options) {
  const auto shards = PlanShards(tensors, options.max_shard_bytes);
  if (shards.size() <= 1) {
    DMS_RETURN_IF_ERROR(WriteSafetensorsFile(dir + "/model.safetensors", tensors, fill, options));
    return std::vector<std::string>{"model.safetensors"};
  }
  std::vector<std::string> written;
  nlohmann::json weight_map = nlohmann::json::object();  // sorted keys, as transformers writes
  uint64_t total = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string name = ShardName(s, shards.size());
    DMS_RETURN_IF_ERROR(WriteFile(dir + "/" + name, tensors, shards[s], fill, options));
    for (size_t i : shards[s]) {
      weight_map[tensors[i].name] = name;
      total += tensors[i].nbytes();
    }
    written.push_back(name);
  }
  nlohmann::ordered_json index;
  index["metadata"] = {{"total_size", total}};
  index["weight_map"] = weight_map;
  const std::string index_name = "model.safetensors.index.json";
  DMS_RETURN_IF_ERROR(WriteTextFile(dir + "/" + index_name, index.dump(2) + "\n"));
  written.push_back(index_name);
  return written;
}

}  // namespace dms
