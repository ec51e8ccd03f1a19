#include "client/connection.h"

#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>

#include "client/client_util.h"

namespace dms::client {
namespace {

std::string TrimToken(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::chrono::system_clock::time_point DeadlineIn(double seconds) {
  return std::chrono::system_clock::now() +
         std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6));
}

}  // namespace

void AddConnectionFlags(CLI::App* cmd, ConnectionOptions* o) {
  cmd->add_option("--target", o->target, "Server address HOST:PORT")->capture_default_str();
  cmd->add_flag("--tls", o->tls, "Use TLS (implied by --tls-ca/--tls-cert/--tls-key)");
  cmd->add_option("--tls-ca", o->tls_ca, "PEM file of CA roots that verify the server (default: system roots)");
  cmd->add_option("--tls-cert", o->tls_cert, "PEM client certificate for mutual TLS (with --tls-key)");
  cmd->add_option("--tls-key", o->tls_key, "PEM private key of --tls-cert");
  cmd->add_option("--tls-server-name", o->tls_server_name,
                  "Name expected in the server certificate (default: the target host)");
  cmd->add_option("--auth-token-file", o->auth_token_file,
                  "File holding a bearer token, sent as 'authorization: Bearer <token>'");
  cmd->add_option("--connect-timeout", o->connect_timeout_s, "Seconds to wait for the connection")
      ->capture_default_str();
}

StatusOr<std::unique_ptr<Connection>> Connection::Open(const ConnectionOptions& options) {
  std::unique_ptr<Connection> c(new Connection());
  c->options_ = options;
  if (options.target.empty()) return InvalidArgumentError("--target: empty address (expected HOST:PORT)");
  if (!(options.connect_timeout_s > 0) || !std::isfinite(options.connect_timeout_s)) {
    return InvalidArgumentError("--connect-timeout: expected a positive number of seconds");
  }
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    return InvalidArgumentError("--tls-cert and --tls-key: give both (mutual TLS) or neither");
  }
  if (!options.auth_token_file.empty()) {
    DMS_ASSIGN_OR_RETURN(std::string raw, ReadTextFile(options.auth_token_file, "--auth-token-file"));
    c->token_ = TrimToken(raw);
    if (c->token_.empty()) {
      return InvalidArgumentError("--auth-token-file: '" + options.auth_token_file + "' holds no token");
    }
    if (c->token_.find_first_of("\r\n") != std::string::npos) {
      return InvalidArgumentError("--auth-token-file: '" + options.auth_token_file +
                                  "' must hold one token on one line");
    }
  }
  const bool tls = options.tls || !options.tls_ca.empty() || !options.tls_cert.empty();
  std::shared_ptr<grpc::ChannelCredentials> creds;
  grpc::ChannelArguments args;
  // Benchmarks open many concurrent streams on one channel.
  args.SetInt(GRPC_ARG_MAX_CONCURRENT_STREAMS, 1 << 20);
  args.SetMaxReceiveMessageSize(64 << 20);
  if (tls) {
    grpc::SslCredentialsOptions ssl;
    if (!options.tls_ca.empty()) {
      DMS_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadTextFile(options.tls_ca, "--tls-ca"));
    }
    if (!options.tls_cert.empty()) {
      DMS_ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadTextFile(options.tls_cert, "--tls-cert"));
      DMS_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadTextFile(options.tls_key, "--tls-key"));
    }
    creds = grpc::SslCredentials(ssl);
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
  } else {
    if (!options.tls_server_name.empty()) {
      return InvalidArgumentError("--tls-server-name: needs TLS (--tls or --tls-ca)");
    }
    creds = grpc::InsecureChannelCredentials();
  }
  c->channel_ = grpc::CreateCustomChannel(options.target, creds, args);
  if (!c->channel_) return InvalidArgumentError("--target: cannot create a channel to '" + options.target + "'");
  c->stub_ = dms::v1::Inference::NewStub(c->channel_);
  return c;
}

Status Connection::WaitConnected() const {
  // Fails at the first failed attempt (refused, TLS handshake) rather than
  // retrying until the timeout; the timeout covers unanswered connects.
  const auto deadline = DeadlineIn(options_.connect_timeout_s);
  const bool tls = options_.tls || !options_.tls_ca.empty() || !options_.tls_cert.empty();
  grpc_connectivity_state state = channel_->GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      return UnavailableError(Format("cannot reach %s: connection failed (is dms-server running there%s?)",
                                     options_.target.c_str(), tls ? ", with TLS" : ""));
    }
    if (!channel_->WaitForStateChange(state, deadline)) {
      return UnavailableError(Format("cannot reach %s within %g s (is dms-server running there%s?)",
                                     options_.target.c_str(), options_.connect_timeout_s,
                                     tls ? ", with TLS" : ""));
    }
    state = channel_->GetState(/*try_to_connect=*/true);
  }
  return OkStatus();
}

void Connection::Prepare(grpc::ClientContext* context, double timeout_s) const {
  if (!token_.empty()) context->AddMetadata("authorization", "Bearer " + token_);
  if (timeout_s > 0) context->set_deadline(DeadlineIn(timeout_s));
}

}  // namespace dms::client
