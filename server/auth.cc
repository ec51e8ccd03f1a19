#include "server/auth.h"

#include <fstream>

namespace dms::server {

bool RequestAuthorizer::ConstantTimeEquals(const std::string& a, const std::string& b) {
  // Fold every byte of the longer string so timing reveals no prefix match.
  const size_t n = std::max(a.size(), b.size());
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? a[i] : 0;
    const unsigned char y = i < b.size() ? b[i] : 0;
    diff |= x ^ y;
  }
  return diff == 0;
}

std::string RequestAuthorizer::PeerAddress(const std::string& peer) {
  const size_t colon = peer.rfind(':');
  const size_t first = peer.find(':');
  if (colon == std::string::npos || colon == first) return peer;  // no port part
  return peer.substr(0, colon);
}

StatusOr<std::unique_ptr<RequestAuthorizer>> RequestAuthorizer::Create(const AuthOptions& options) {
  std::unique_ptr<RequestAuthorizer> a(new RequestAuthorizer(options));
  if (!options.token_file.empty()) {
    std::ifstream f(options.token_file);
    if (!f) return InvalidArgumentError("--auth-token-file " + options.token_file + ": cannot read");
    std::string line;
    while (std::getline(f, line)) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
      size_t b = line.find_first_not_of(" \t");
      if (b == std::string::npos || line[b] == '#') continue;
      a->tokens_.push_back(line.substr(b));
    }
    if (a->tokens_.empty()) {
      return InvalidArgumentError("--auth-token-file " + options.token_file + ": no tokens in the file");
    }
  }
  if (options.rate_per_token < 0 || options.rate_burst < 1) {
    return InvalidArgumentError("--rate-limit must be >= 0 and --rate-burst >= 1");
  }
  return a;
}

StatusOr<int> RequestAuthorizer::MatchToken(const grpc::CallbackServerContext& ctx) const {
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return UnauthenticatedError("missing 'authorization: Bearer <token>' metadata");
  const std::string value(it->second.data(), it->second.size());
  constexpr char kPrefix[] = "Bearer ";
  if (value.compare(0, sizeof(kPrefix) - 1, kPrefix) != 0) {
    return UnauthenticatedError("the authorization metadata is not 'Bearer <token>'");
  }
  const std::string token = value.substr(sizeof(kPrefix) - 1);
  int match = -1;
  for (int i = static_cast<int>(tokens_.size()) - 1; i >= 0; --i) {  // no early exit
    if (ConstantTimeEquals(token, tokens_[i])) match = i;
  }
  if (match < 0) return UnauthenticatedError("invalid bearer token");
  return match;
}

StatusOr<int> RequestAuthorizer::CheckToken(const grpc::CallbackServerContext& ctx,
                                            std::string_view rpc) const {
  if (tokens_.empty()) return -1;
  StatusOr<int> match = MatchToken(ctx);
  if (!match.ok()) audit_.Refused(ctx.peer(), rpc, match.status().message());
  return match;
}

Status RequestAuthorizer::CheckRate(const std::string& key) const {
  if (options_.rate_per_token <= 0) return OkStatus();
  const auto now = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, inserted] = buckets_.try_emplace(key);
  Bucket& b = it->second;
  if (inserted) {
    b.tokens = options_.rate_burst;
  } else {
    const double dt = std::chrono::duration<double>(now - b.last).count();
    b.tokens = std::min(options_.rate_burst, b.tokens + dt * options_.rate_per_token);
  }
  b.last = now;
  if (b.tokens < 1) {
    return ResourceExhaustedError("request rate limit exceeded (" + std::to_string(options_.rate_per_token) +
                                  " requests/s); retry later");
  }
  b.tokens -= 1;
  return OkStatus();
}

namespace {

// The verified client certificate's identity ("" without one).
std::string CertificateIdentity(const grpc::CallbackServerContext& ctx) {
  std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) return "";
  std::string id;
  for (const grpc::string_ref& part : auth->GetPeerIdentity()) {
    if (!id.empty()) id += ",";
    id.append(part.data(), part.size());
  }
  return id;
}

}  // namespace

StatusOr<std::string> RequestAuthorizer::Authorize(const grpc::CallbackServerContext& ctx,
                                                   std::string_view rpc) const {
  DMS_ASSIGN_OR_RETURN(int token, CheckToken(ctx, rpc));
  std::string caller;
  if (token >= 0) caller = "token#" + std::to_string(token);
  if (std::string cert = CertificateIdentity(ctx); !cert.empty()) {
    caller += (caller.empty() ? "" : " ") + ("cert:" + cert);
  }
  if (caller.empty()) caller = "peer:" + PeerAddress(ctx.peer());
  // Rate by token when auth is on (tokens are per client), else by address.
  DMS_RETURN_IF_ERROR(
      CheckRate(token >= 0 ? "token#" + std::to_string(token) : PeerAddress(ctx.peer())));
  return caller;
}

Status RequestAuthorizer::AuthorizeHealth(const grpc::CallbackServerContext& ctx,
                                          std::string_view rpc) const {
  if (options_.health_exempt) return OkStatus();
  return CheckToken(ctx, rpc).status();
}

Status RequestAuthorizer::AcquireStream(const std::string& peer) {
  if (options_.max_streams_per_peer <= 0) return OkStatus();
  const std::string addr = PeerAddress(peer);
  std::lock_guard<std::mutex> lock(mu_);
  int& n = streams_[addr];
  if (n >= options_.max_streams_per_peer) {
    return ResourceExhaustedError("too many concurrent streams from this client (limit " +
                                  std::to_string(options_.max_streams_per_peer) + ")");
  }
  ++n;
  return OkStatus();
}

void RequestAuthorizer::ReleaseStream(const std::string& peer) {
  if (options_.max_streams_per_peer <= 0) return;
  const std::string addr = PeerAddress(peer);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = streams_.find(addr);
  if (it != streams_.end() && --it->second <= 0) streams_.erase(it);
}

}  // namespace dms::server
