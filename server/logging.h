// Server logging on spdlog: text or JSON lines, one line per request event
// (never per token at info level). Anything a client sent (request ids,
// text) is escaped before it reaches a log line.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace dms::server {

// format: "text" | "json"; level: trace|debug|info|warn|error|critical|off.
// gRPC's and protobuf's own log lines go through the same logger (escaped,
// at the level set here), so nothing else writes to stderr.
Status SetupLogging(const std::string& format, const std::string& level);

// Client-supplied text as it may appear in a log line: EscapeText
// (common/text_escape.h), so a request id can neither break a line nor
// forge a JSON field.
std::string LogEscape(std::string_view s, size_t max = 128);

}  // namespace dms::server
