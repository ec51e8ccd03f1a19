// Who may call: bearer tokens, per-peer stream limits and per-token request
// rates. Every RPC asks the RequestAuthorizer first; refusals are
// UNAUTHENTICATED (no or wrong token) or RESOURCE_EXHAUSTED (a limit), with a
// message that never echoes the token. Each refused authentication goes to
// the audit log (peer, RPC, reason; rate-limited).
//
// An authorized inference call gets its caller's identity: the tenant that
// owns its request ids and sessions. It is the bearer token (by its position
// in the token file), the verified client certificate's identity, both when
// both are in use, or the peer's address when neither is.
//
// Threading: all methods are thread-safe.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "server/audit_log.h"

namespace dms::server {

struct AuthOptions {
  std::string token_file;          // one token per line ('#' comments); "" = no auth
  bool health_exempt = true;       // health checks need no token
  int max_streams_per_peer = 64;   // concurrent Generate/Chat streams per client address (0 = off)
  double rate_per_token = 0;       // requests per second per token, or per address without auth (0 = off)
  double rate_burst = 20;          // token-bucket depth
};

class RequestAuthorizer {
 public:
  static StatusOr<std::unique_ptr<RequestAuthorizer>> Create(const AuthOptions& options);

  // Checks the bearer token and the request rate of an inference RPC named
  // `rpc` (for the audit log); returns the caller's identity.
  StatusOr<std::string> Authorize(const grpc::CallbackServerContext& ctx,
                                  std::string_view rpc) const;
  Status AuthorizeHealth(const grpc::CallbackServerContext& ctx, std::string_view rpc) const;

  // A stream slot for the caller's address; release it when the stream ends.
  // RESOURCE_EXHAUSTED when the peer already has max_streams_per_peer.
  Status AcquireStream(const std::string& peer);
  void ReleaseStream(const std::string& peer);

  bool enabled() const { return !tokens_.empty(); }

  // Constant-time comparison (the time depends only on the lengths).
  static bool ConstantTimeEquals(const std::string& a, const std::string& b);
  // "ipv4:127.0.0.1:5555" -> "ipv4:127.0.0.1"; "ipv6:[::1]:5555" -> "ipv6:[::1]".
  static std::string PeerAddress(const std::string& peer);

 private:
  explicit RequestAuthorizer(const AuthOptions& options) : options_(options) {}
  // The caller's token's position in the file (-1 when auth is off) or
  // UNAUTHENTICATED, logged to the audit trail.
  StatusOr<int> CheckToken(const grpc::CallbackServerContext& ctx, std::string_view rpc) const;
  StatusOr<int> MatchToken(const grpc::CallbackServerContext& ctx) const;
  Status CheckRate(const std::string& key) const;

  AuthOptions options_;
  mutable AuditLog audit_;
  std::vector<std::string> tokens_;

  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point last;
  };
  mutable std::mutex mu_;
  mutable std::map<std::string, Bucket> buckets_;  // rate limit per token / address
  std::map<std::string, int> streams_;             // open streams per address
};

}  // namespace dms::server
