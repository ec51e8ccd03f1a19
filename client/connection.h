// The channel to a dms-server: target, TLS (server-verified or mutual) and a
// bearer token sent as `authorization: Bearer <token>` metadata on every call.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "dms/v1/inference.grpc.pb.h"
#include "common/cli_fwd.h"
#include "common/status.h"

namespace dms::client {

struct ConnectionOptions {
  std::string target = "127.0.0.1:50051";
  bool tls = false;             // also implied by any --tls-* file
  std::string tls_ca;           // PEM roots; empty: the system's
  std::string tls_cert;         // client certificate (mutual TLS), with tls_key
  std::string tls_key;
  std::string tls_server_name;  // override the name checked in the server's certificate
  std::string auth_token_file;  // the file holds the token (surrounding whitespace ignored)
  double connect_timeout_s = 10;
};

// Adds --target, --tls, --tls-ca, --tls-cert, --tls-key, --tls-server-name,
// --auth-token-file and --connect-timeout to a subcommand.
void AddConnectionFlags(CLI::App* cmd, ConnectionOptions* options);

class Connection {
 public:
  // Reads the credential files and creates the channel (connects lazily).
  // Errors name the flag and file: "--tls-ca: cannot read 'x.pem': ...".
  static StatusOr<std::unique_ptr<Connection>> Open(const ConnectionOptions& options);

  // Waits until the channel is connected; UNAVAILABLE "cannot reach TARGET
  // within Ns" otherwise, so an unreachable server is one clear line.
  Status WaitConnected() const;

  // Adds the auth metadata and, when timeout_s > 0, a deadline.
  void Prepare(grpc::ClientContext* context, double timeout_s = 0) const;

  dms::v1::Inference::Stub* stub() const { return stub_.get(); }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  const std::string& target() const { return options_.target; }

 private:
  Connection() = default;

  ConnectionOptions options_;
  std::string token_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<dms::v1::Inference::Stub> stub_;
};

}  // namespace dms::client
