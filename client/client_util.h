// Small helpers shared by the dms client commands: one-line errors, flag
// value parsing (lists, ranges, sizes) and files.
#pragma once

#include <grpcpp/support/status.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace dms::client {

// Prints "dms: <message>" (one line) on stderr and returns 1.
int Fail(const std::string& message);

// Collapses newlines and tabs to spaces so any message prints as one line.
std::string OneLine(const std::string& text);

// A gRPC status as a dms Status: "<what>: <CODE>: <message>" on one line.
Status FromGrpc(const grpc::Status& status, const std::string& what);

// "1,2, 3" -> {1, 2, 3}. INVALID_ARGUMENT naming `what` and the bad item.
StatusOr<std::vector<int32_t>> ParseIntList(const std::string& text, const std::string& what);
// "0.5,1,inf" -> {0.5, 1, inf}; `allow_inf` admits "inf".
StatusOr<std::vector<double>> ParseDoubleList(const std::string& text, const std::string& what,
                                              bool allow_inf);
// A token count with an optional K suffix (x1024): "512", "4K", "32k".
StatusOr<int64_t> ParseTokenCount(const std::string& text, const std::string& what);

// An inclusive integer range "N" or "LO:HI" (0 <= LO <= HI).
struct IntRange {
  int64_t lo = 0;
  int64_t hi = 0;
};
StatusOr<IntRange> ParseRange(const std::string& text, const std::string& what);

StatusOr<std::string> ReadTextFile(const std::string& path, const std::string& what);
Status WriteTextFile(const std::string& path, const std::string& text);

// Formats with printf semantics into a std::string.
std::string Format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace dms::client
