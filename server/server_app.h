// dms-server's lifecycle: start gRPC (health NOT_SERVING), load and warm the
// model, serve (health SERVING), and on SIGTERM/SIGINT stop accepting, drain
// in-flight requests for --drain-timeout, cancel the rest and exit 0.
#pragma once

#include "server/server_options.h"

namespace dms::server {

// Blocks until a termination signal. Returns the process exit code; startup
// errors are logged as one line and return 1. The caller must have blocked
// SIGTERM/SIGINT in all threads (BlockTerminationSignals) before any thread
// starts.
int RunServer(const ServerOptions& options);

void BlockTerminationSignals();

}  // namespace dms::server
