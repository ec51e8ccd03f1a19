#include "client/health_check.h"

#include "client/client_util.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace dms::client {

const char* ServingStatusName(ServingStatus status) {
  switch (status) {
    case ServingStatus::kUnknown: return "UNKNOWN";
    case ServingStatus::kServing: return "SERVING";
    case ServingStatus::kNotServing: return "NOT_SERVING";
    case ServingStatus::kServiceUnknown: return "SERVICE_UNKNOWN";
  }
  return "UNKNOWN";
}

StatusOr<ServingStatus> CheckHealth(const Connection& connection, const std::string& service,
                                    double timeout_s) {
  auto stub = grpc::health::v1::Health::NewStub(connection.channel());
  grpc::ClientContext context;
  connection.Prepare(&context, timeout_s);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) {
    return FromGrpc(status, "health check of " + connection.target() +
                                (service.empty() ? std::string() : " (service '" + service + "')"));
  }
  const int s = response.status();
  return s >= 0 && s <= 3 ? static_cast<ServingStatus>(s) : ServingStatus::kUnknown;
}

}  // namespace dms::client
