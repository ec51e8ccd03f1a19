// grpc.health.v1.Health, served by us rather than gRPC's built-in service so
// that it follows the same auth rules as everything else (exempt by flag).
//
//   service ""                  SERVING while the process is alive (liveness)
//   service "dms.v1.Inference"  NOT_SERVING until the model is loaded and
//                               warmed up, and again while draining (readiness)
//   anything else               NOT_FOUND (Check) / SERVICE_UNKNOWN (Watch)
//
// Requests arrive as raw bytes (server/wire.h): a malformed one gets
// INVALID_ARGUMENT after the auth check.
//
// Threading: SetStatus and the RPCs may run concurrently; Watch streams are
// pushed every change.
#pragma once

#include <map>
#include <mutex>
#include <set>
#include <string>

#include "grpc/health/v1/health.grpc.pb.h"
#include "server/auth.h"

namespace dms::server {

using HealthServiceBase = grpc::health::v1::Health::WithRawCallbackMethod_Check<
    grpc::health::v1::Health::WithRawCallbackMethod_Watch<grpc::health::v1::Health::Service>>;

class HealthService final : public HealthServiceBase {
 public:
  using ServingStatus = grpc::health::v1::HealthCheckResponse::ServingStatus;

  // auth may be null (no auth) and is not owned.
  explicit HealthService(const RequestAuthorizer* auth);
  ~HealthService() override;

  void SetStatus(const std::string& service, bool serving);
  // Ends every Watch stream (at shutdown, so the server can stop).
  void Shutdown();

  grpc::ServerUnaryReactor* Check(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                  grpc::ByteBuffer* resp) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Watch(grpc::CallbackServerContext* ctx,
                                                    const grpc::ByteBuffer* req) override;

 private:
  class Watcher;
  ServingStatus StatusOf(const std::string& service) const;  // call with mu_ held

  const RequestAuthorizer* auth_;
  // Recursive: gRPC may run a reaction (OnDone, OnWriteDone) inline from
  // Finish or StartWrite while we hold it.
  mutable std::recursive_mutex mu_;
  std::map<std::string, bool> status_;
  std::set<Watcher*> watchers_;
  bool shutdown_ = false;
};

}  // namespace dms::server
