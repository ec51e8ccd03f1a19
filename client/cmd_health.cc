// dms health: grpc.health.v1 check for scripts and container health checks.
// Exit 0 when SERVING, 1 otherwise (not serving, unreachable, unknown service).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>

#include "client/client_util.h"
#include "client/commands.h"
#include "client/connection.h"
#include "client/health_check.h"

namespace dms::client {
namespace {

struct HealthArgs {
  ConnectionOptions connection;
  std::string service = "dms.v1.Inference";
  bool live = false, quiet = false;
  double timeout_s = 5;
  double wait_s = 0;
};

int RunHealth(HealthArgs a) {
  if (a.live) a.service = "";
  if (!(a.timeout_s > 0)) return Fail("health: --timeout must be > 0 seconds");
  if (a.wait_s < 0) return Fail("health: --wait must be >= 0 seconds");
  auto connection = Connection::Open(a.connection);
  if (!connection.ok()) return Fail(connection.status().message());
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::duration<double>(a.wait_s);
  while (true) {
    auto status = CheckHealth(**connection, a.service, a.timeout_s);
    const bool serving = status.ok() && *status == ServingStatus::kServing;
    if (serving || std::chrono::steady_clock::now() >= give_up) {
      if (!status.ok()) return a.quiet ? 1 : Fail(status.status().message());
      if (!a.quiet) std::printf("%s\n", ServingStatusName(*status));
      return serving ? 0 : 1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

}  // namespace

void RegisterHealthCommand(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<HealthArgs>();
  CLI::App* cmd = app.add_subcommand(
      "health", "Health check: prints the serving status; exit 0 when SERVING, 1 otherwise");
  cmd->add_option("--service", a->service, "Service to check (\"\" = the server as a whole)")
      ->capture_default_str();
  cmd->add_flag("--live", a->live, "Liveness: check the server as a whole (service \"\")");
  cmd->add_option("--timeout", a->timeout_s, "Seconds per check")->capture_default_str();
  cmd->add_option("--wait", a->wait_s, "Keep checking for up to this many seconds until SERVING");
  cmd->add_flag("-q,--quiet", a->quiet, "Print nothing; the exit code tells");
  AddConnectionFlags(cmd, &a->connection);
  cmd->callback([a, exit_code] { *exit_code = RunHealth(*a); });
}

}  // namespace dms::client
