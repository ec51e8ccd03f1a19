#include "engine/cli/cli_util.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace dms::cli {

StatusOr<std::vector<int32_t>> ParseIntList(const std::string& text, const std::string& what) {
  std::vector<int32_t> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string::npos) comma = text.size();
    std::string item = text.substr(pos, comma - pos);
    const size_t b = item.find_first_not_of(" \t\n");
    const size_t e = item.find_last_not_of(" \t\n");
    item = b == std::string::npos ? "" : item.substr(b, e - b + 1);
    if (item.empty()) {
      if (comma == text.size() && !out.empty() && pos == text.size()) break;  // trailing comma
      return InvalidArgumentError(what + ": empty item in '" + text + "'");
    }
    char* end = nullptr;
    errno = 0;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (*end != '\0' || errno != 0 || v < INT32_MIN || v > INT32_MAX) {
      return InvalidArgumentError(what + ": '" + item + "' is not an integer");
    }
    out.push_back(static_cast<int32_t>(v));
    pos = comma + 1;
  }
  return out;
}

Status WriteBinaryFile(const std::string& path, const void* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return InternalError(path + ": cannot open for writing: " + std::strerror(errno));
  const size_t n = size ? std::fwrite(data, 1, size, f) : 0;
  const bool ok = n == size && std::fclose(f) == 0;
  if (!ok) return InternalError(path + ": write failed");
  return OkStatus();
}

Status WriteTextFile(const std::string& path, const std::string& text) {
  return WriteBinaryFile(path, text.data(), text.size());
}

}  // namespace dms::cli
