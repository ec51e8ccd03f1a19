#include "server/health_service.h"

#include "server/status_mapping.h"

namespace dms::server {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

// One Watch stream: writes the current status, then every change.
class HealthService::Watcher : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  Watcher(HealthService* owner, std::string service) : owner_(owner), service_(std::move(service)) {}

  // Called with owner_->mu_ held.
  void PushLocked(ServingStatus status) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (done_) return;
    if (writing_) {
      pending_ = status;
      has_pending_ = true;
      return;
    }
    out_.set_status(status);
    writing_ = true;
    StartWrite(&out_);
  }
  void FinishLocked() {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (done_) return;
    done_ = true;
    Finish(grpc::Status::OK);
  }
  const std::string& service() const { return service_; }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    writing_ = false;
    if (!ok || done_) return;
    if (has_pending_) {
      has_pending_ = false;
      out_.set_status(pending_);
      writing_ = true;
      StartWrite(&out_);
    }
  }
  void OnCancel() override {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (!done_) {
      done_ = true;
      Finish(grpc::Status::CANCELLED);
    }
  }
  void OnDone() override {
    {
      std::lock_guard<std::recursive_mutex> lock(owner_->mu_);
      owner_->watchers_.erase(this);
    }
    delete this;
  }

 private:
  HealthService* owner_;
  std::string service_;
  std::recursive_mutex mu_;
  HealthCheckResponse out_;
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
  for (Watcher* w : watchers_) w->FinishLocked();
}

grpc::ServerUnaryReactor* HealthService::Check(grpc::CallbackServerContext* ctx,
                                               const HealthCheckRequest* req, HealthCheckResponse* resp) {
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  if (auth_) {
    Status st = auth_->AuthorizeHealth(*ctx);
    if (!st.ok()) {
      r->Finish(ToGrpcStatus(st));
      return r;
    }
  }
  std::lock_guard<std::recursive_mutex> lock(mu_);
  const ServingStatus s = StatusOf(req->service());
  if (s == HealthCheckResponse::SERVICE_UNKNOWN) {
    r->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND, "unknown service '" + req->service() + "'"));
    return r;
  }
  resp->set_status(s);
  r->Finish(grpc::Status::OK);
  return r;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(grpc::CallbackServerContext* ctx,
                                                                    const HealthCheckRequest* req) {
  auto* w = new Watcher(this, req->service());
  if (auth_) {
    Status st = auth_->AuthorizeHealth(*ctx);
    if (!st.ok()) {
      w->Finish(ToGrpcStatus(st));
      return w;
    }
  }
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (shutdown_) {
    w->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "server is shutting down"));
    return w;
  }
  watchers_.insert(w);
  w->PushLocked(StatusOf(req->service()));
  return w;
}

}  // namespace dms::server
