// grpc.health.v1.Health/Check, the standard health protocol.
#pragma once

#include <string>

#include "client/connection.h"
#include "common/status.h"

namespace dms::client {

// grpc.health.v1.HealthCheckResponse.ServingStatus.
enum class ServingStatus { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };
const char* ServingStatusName(ServingStatus status);

// Asks the server about `service` ("" = the server as a whole). Errors are
// the RPC's (UNAVAILABLE when unreachable, NOT_FOUND for an unknown service).
StatusOr<ServingStatus> CheckHealth(const Connection& connection, const std::string& service,
                                    double timeout_s);

}  // namespace dms::client
