// Small parsing and output helpers shared by dms-engine subcommands.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"

namespace dms::cli {

// "1,2, 3" -> {1, 2, 3}. INVALID_ARGUMENT naming `what` and the bad item.
StatusOr<std::vector<int32_t>> ParseIntList(const std::string& text, const std::string& what);

// Writes bytes to a file; INTERNAL naming the path on failure.
Status WriteBinaryFile(const std::string& path, const void* data, size_t size);
Status WriteTextFile(const std::string& path, const std::string& text);

}  // namespace dms::cli
