// Runs build/bin/dms-server as a child process on loopback ports it picks
// itself (port 0; read back from --ready-file), and talks to it the way a
// user would: a real gRPC channel and plain HTTP for /metrics.
#pragma once

#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "dms/v1/inference.grpc.pb.h"
#include "tests/test_util.h"

namespace dms::testing {

class ServerProcess {
 public:
  // Starts dms-server with `args` (plus --listen/--metrics-listen/--ready-file)
  // and waits until it serves. Fails the test (throws) if it exits first.
  explicit ServerProcess(const std::vector<std::string>& args, bool wait_ready = true);
  ~ServerProcess();  // SIGKILL if still running

  int grpc_port() const { return grpc_port_; }
  int metrics_port() const { return metrics_port_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(grpc_port_); }
  std::shared_ptr<grpc::Channel> Channel() const;
  std::unique_ptr<v1::Inference::Stub> Stub() const;

  // Blocks until the ready file appears (or the process dies: returns false).
  bool WaitReady(double timeout_s = 60);
  void Signal(int sig);
  // Waits for exit; returns the exit code (or -signal).
  int Wait(double timeout_s = 60);
  // Everything the server wrote to stderr so far.
  std::string Log() const;
  // Whether the process is still running (not exited or killed by a signal).
  bool Alive();
  // Resident and peak resident memory of the server process, in bytes (from /proc).
  int64_t RssBytes() const;
  int64_t PeakRssBytes() const;

 private:
  pid_t pid_ = -1;
  TempDir dir_;
  int grpc_port_ = 0, metrics_port_ = 0;
};

// One call of `method` ("/dms.v1.Inference/Generate") with hand-made request
// bytes, the way a client with its own stubs (or none) would send them.
struct RawCallResult {
  grpc::Status status;
  std::vector<std::string> responses;  // serialized response messages
};
RawCallResult RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                      const std::string& request_bytes, const std::string& token = "",
                      double deadline_s = 10);

// A throwaway CA, a server certificate for 127.0.0.1 and a client
// certificate (openssl on the PATH).
struct TestCerts {
  TestCerts();
  // A TLS channel to `target` trusting the CA, with the client certificate
  // when asked.
  std::shared_ptr<grpc::Channel> Channel(const std::string& target, bool client_cert) const;

  TempDir dir;
  std::string ca, server_cert, server_key, client_cert, client_key;
};

// GET http://127.0.0.1:port/path; returns the body ("" on failure).
std::string HttpGet(int port, const std::string& path);
// The value of a Prometheus sample line "name{labels} value" in a scrape.
double MetricValue(const std::string& scrape, const std::string& name_and_labels);
// Scrapes /metrics until `name_and_labels` equals `value` (metrics follow
// the engine step; about 2 s at most) and returns the last scrape.
std::string ScrapeUntil(int metrics_port, const std::string& name_and_labels, double value);
// A free TCP port on loopback (bound then released).
int FreePort();

}  // namespace dms::testing
