#include "client/client_util.h"

#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace dms::client {
namespace {

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Splits on commas; an empty item is an error (a trailing comma included).
StatusOr<std::vector<std::string>> SplitList(const std::string& text, const std::string& what) {
  std::vector<std::string> items;
  size_t pos = 0;
  while (true) {
    const size_t comma = text.find(',', pos);
    std::string item = Trim(text.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos));
    if (item.empty()) return InvalidArgumentError(what + ": empty item in '" + text + "'");
    items.push_back(item);
    if (comma == std::string::npos) break;
    pos = comma + 1;
  }
  return items;
}

bool ParseInt64(const std::string& item, int64_t* out) {
  if (item.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(item.c_str(), &end, 10);
  if (*end != '\0' || errno != 0) return false;
  *out = v;
  return true;
}

}  // namespace

int Fail(const std::string& message) {
  std::fprintf(stderr, "dms: %s\n", OneLine(message).c_str());
  return 1;
}

std::string OneLine(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\n' || c == '\r' || c == '\t') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

Status FromGrpc(const grpc::Status& status, const std::string& what) {
  if (status.ok()) return OkStatus();
  const auto code = static_cast<StatusCode>(static_cast<int>(status.error_code()));
  return Status(code, OneLine(what + ": " + std::string(StatusCodeName(code)) + ": " +
                              status.error_message()));
}

StatusOr<std::vector<int32_t>> ParseIntList(const std::string& text, const std::string& what) {
  DMS_ASSIGN_OR_RETURN(std::vector<std::string> items, SplitList(text, what));
  std::vector<int32_t> out;
  for (const std::string& item : items) {
    int64_t v = 0;
    if (!ParseInt64(item, &v) || v < INT32_MIN || v > INT32_MAX) {
      return InvalidArgumentError(what + ": '" + item + "' is not an integer");
    }
    out.push_back(static_cast<int32_t>(v));
  }
  return out;
}

StatusOr<std::vector<double>> ParseDoubleList(const std::string& text, const std::string& what,
                                              bool allow_inf) {
  DMS_ASSIGN_OR_RETURN(std::vector<std::string> items, SplitList(text, what));
  std::vector<double> out;
  for (const std::string& item : items) {
    if (allow_inf && (item == "inf" || item == "INF" || item == "Inf")) {
      out.push_back(INFINITY);
      continue;
    }
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(item.c_str(), &end);
    if (*end != '\0' || errno != 0 || !std::isfinite(v)) {
      return InvalidArgumentError(what + ": '" + item + "' is not a number" +
                                  (allow_inf ? " (or inf)" : ""));
    }
    out.push_back(v);
  }
  return out;
}

StatusOr<int64_t> ParseTokenCount(const std::string& text, const std::string& what) {
  std::string item = Trim(text);
  int64_t scale = 1;
  if (!item.empty() && (item.back() == 'K' || item.back() == 'k')) {
    scale = 1024;
    item.pop_back();
  }
  int64_t v = 0;
  if (!ParseInt64(item, &v) || v <= 0 || v > (int64_t{1} << 40)) {
    return InvalidArgumentError(what + ": '" + text + "' is not a positive token count (e.g. 512 or 4K)");
  }
  return v * scale;
}

StatusOr<IntRange> ParseRange(const std::string& text, const std::string& what) {
  const std::string t = Trim(text);
  const size_t colon = t.find(':');
  IntRange r;
  const bool ok = colon == std::string::npos
                      ? ParseInt64(t, &r.lo) && (r.hi = r.lo, true)
                      : ParseInt64(Trim(t.substr(0, colon)), &r.lo) &&
                            ParseInt64(Trim(t.substr(colon + 1)), &r.hi);
  if (!ok || r.lo < 0 || r.hi < r.lo) {
    return InvalidArgumentError(what + ": expected N or LO:HI with 0 <= LO <= HI, found '" + text + "'");
  }
  return r;
}

StatusOr<std::string> ReadTextFile(const std::string& path, const std::string& what) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return NotFoundError(what + ": cannot read '" + path + "': " + std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

Status WriteTextFile(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return InternalError(path + ": cannot open for writing: " + std::strerror(errno));
  const size_t n = text.empty() ? 0 : std::fwrite(text.data(), 1, text.size(), f);
  const bool ok = n == text.size() && std::fclose(f) == 0;
  if (!ok) return InternalError(path + ": write failed: " + std::strerror(errno));
  return OkStatus();
}

std::string Format(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  va_list copy;
  va_copy(copy, args);
  const int n = std::vsnprintf(nullptr, 0, fmt, copy);
  va_end(copy);
  std::string out(n > 0 ? static_cast<size_t>(n) : 0, '\0');
  if (n > 0) std::vsnprintf(out.data(), out.size() + 1, fmt, args);
  va_end(args);
  return out;
}

}  // namespace dms::client
