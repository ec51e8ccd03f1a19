#include "server/logging.h"

#include <google/protobuf/stubs/logging.h>
#include <grpc/support/log.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "common/text_escape.h"

namespace dms::server {

std::string LogEscape(std::string_view s, size_t max) { return EscapeText(s, max); }

namespace {

// gRPC errors are mostly about one connection (a failed TLS handshake, a
// malformed frame): warnings of the server, not errors.
void GrpcLog(gpr_log_func_args* args) {
  const spdlog::level::level_enum level =
      args->severity == GPR_LOG_SEVERITY_ERROR  ? spdlog::level::warn
      : args->severity == GPR_LOG_SEVERITY_INFO ? spdlog::level::debug
                                                : spdlog::level::trace;
  spdlog::log(level, "grpc: {} ({}:{})", LogEscape(args->message, 512), LogEscape(args->file),
              args->line);
}

void ProtobufLog(google::protobuf::LogLevel severity, const char* file, int line,
                 const std::string& message) {
  const spdlog::level::level_enum level =
      severity >= google::protobuf::LOGLEVEL_FATAL     ? spdlog::level::critical
      : severity >= google::protobuf::LOGLEVEL_WARNING ? spdlog::level::warn
                                                       : spdlog::level::debug;
  spdlog::log(level, "protobuf: {} ({}:{})", LogEscape(message, 512), LogEscape(file), line);
}

}  // namespace

Status SetupLogging(const std::string& format, const std::string& level) {
  auto lvl = spdlog::level::from_str(level);
  if (lvl == spdlog::level::off && level != "off") {
    return InvalidArgumentError("--log-level: unknown level '" + level +
                                "' (trace, debug, info, warn, error, critical, off)");
  }
  auto logger = spdlog::stderr_logger_mt("dms");
  if (format == "json") {
    // Messages are built from escaped fields (LogEscape), so %v is JSON-safe.
    logger->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","msg":"%v"})");
  } else if (format == "text") {
    logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");
  } else {
    return InvalidArgumentError("--log-format: expected text or json, got '" + format + "'");
  }
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  gpr_set_log_verbosity(lvl <= spdlog::level::debug ? GPR_LOG_SEVERITY_DEBUG
                                                    : GPR_LOG_SEVERITY_ERROR);
  gpr_set_log_function(GrpcLog);
  google::protobuf::SetLogHandler(ProtobufLog);
  return OkStatus();
}

}  // namespace dms::server
