// dms-server: gRPC inference service for DMS-compressed Qwen3 models.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "server/logging.h"
#include "server/server_app.h"
#include "server/server_options.h"

int main(int argc, char** argv) {
  // Before any thread exists, so every thread inherits the mask and the main
  // thread alone takes SIGTERM/SIGINT with sigwait.
  dms::server::BlockTerminationSignals();
  CLI::App app{"dms-server: gRPC inference for DMS-compressed Qwen3 models"};
  dms::server::ServerOptions options;
  dms::server::AddServerFlags(app, &options);
  CLI11_PARSE(app, argc, argv);
  dms::Status st = dms::server::SetupLogging(options.log_format, options.log_level);
  if (!st.ok()) {
    std::fprintf(stderr, "dms-server: %s\n", st.message().c_str());
    return 1;
  }
  return dms::server::RunServer(options);
}
