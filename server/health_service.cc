#include "server/health_service.h"

#include "common/text_escape.h"
#include "server/status_mapping.h"
#include "server/wire.h"

namespace dms::server {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream: writes the current status, then every change. Finish is
// called exactly once, whichever comes first: a refusal, shutdown, or the
// client's cancel.
class HealthService::Watcher : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  Watcher(HealthService* owner, std::string service) : owner_(owner), service_(std::move(service)) {}

  // Called with owner_->mu_ held (or before the watcher is registered).
  void PushLocked(ServingStatus status) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (done_) return;
    if (writing_) {
      pending_ = status;
      has_pending_ = true;
      return;
    }
    WriteLocked(status);
  }
  void FinishLocked(const grpc::Status& status) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (done_) return;
    done_ = true;
    Finish(status);
  }
  const std::string& service() const { return service_; }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    writing_ = false;
    if (!ok || done_) return;
    if (has_pending_) {
      has_pending_ = false;
      WriteLocked(pending_);
    }
  }
  void OnCancel() override { FinishLocked(grpc::Status::CANCELLED); }
  void OnDone() override {
    {
      std::lock_guard<std::recursive_mutex> lock(owner_->mu_);
      owner_->watchers_.erase(this);
    }
    delete this;
  }

 private:
  void WriteLocked(ServingStatus status) {
    HealthCheckResponse out;
    out.set_status(status);
    SerializeMessage(out, &buffer_);
    writing_ = true;
    StartWrite(&buffer_);
  }

  HealthService* owner_;
  std::string service_;
  std::recursive_mutex mu_;
  grpc::ByteBuffer buffer_;
  bool writing_ = false, done_ = false, has_pending_ = false;
  ServingStatus pending_ = HealthCheckResponse::UNKNOWN;
};

HealthService::HealthService(const RequestAuthorizer* auth) : auth_(auth) {
  status_[""] = true;
}

HealthService::~HealthService() { Shutdown(); }

HealthService::ServingStatus HealthService::StatusOf(const std::string& service) const {
  auto it = status_.find(service);
  if (it == status_.end()) return HealthCheckResponse::SERVICE_UNKNOWN;
  return it->second ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING;
}

void HealthService::SetStatus(const std::string& service, bool serving) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  status_[service] = serving;
  for (Watcher* w : watchers_) {
    if (w->service() == service) w->PushLocked(StatusOf(service));
  }
}

void HealthService::Shutdown() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  shutdown_ = true;
  for (Watcher* w : watchers_) w->FinishLocked(grpc::Status::OK);
}

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* ctx,
                                               const grpc::ByteBuffer* req,
                                               grpc::ByteBuffer* resp) {
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  HealthCheckRequest request;
  Status st = auth_ ? auth_->AuthorizeHealth(*ctx, "Health/Check") : OkStatus();
  if (st.ok()) st = ParseMessage(*req, &request);
  if (!st.ok()) {
    r->Finish(ToGrpcStatus(st));
    return r;
  }
  std::lock_guard<std::recursive_mutex> lock(mu_);
  const ServingStatus s = StatusOf(request.service());
  if (s == HealthCheckResponse::SERVICE_UNKNOWN) {
    r->Finish(ToGrpcStatus(
        NotFoundError("unknown service '" + EscapeText(request.service(), 128) + "'")));
    return r;
  }
  HealthCheckResponse response;
  response.set_status(s);
  SerializeMessage(response, resp);
  r->Finish(grpc::Status::OK);
  return r;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* HealthService::Watch(grpc::CallbackServerContext* ctx,
                                                                 const grpc::ByteBuffer* req) {
  HealthCheckRequest request;
  Status st = auth_ ? auth_->AuthorizeHealth(*ctx, "Health/Watch") : OkStatus();
  if (st.ok()) st = ParseMessage(*req, &request);
  auto* w = new Watcher(this, request.service());
  if (!st.ok()) {
    w->FinishLocked(ToGrpcStatus(st));
    return w;
  }
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (shutdown_) {
    w->FinishLocked(ToGrpcStatus(UnavailableError("server is shutting down")));
    return w;
  }
  watchers_.insert(w);
  w->PushLocked(StatusOf(request.service()));
  return w;
}

}  // namespace dms::server
