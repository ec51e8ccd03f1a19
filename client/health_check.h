// grpc.health.v1.Health/Check over a generic stub: the two tiny messages are
// encoded by hand, so the client needs no generated health stubs.
#pragma once

#include <string>

#include "client/connection.h"
#include "engine/util/status.h"

namespace dms::client {

// grpc.health.v1.HealthCheckResponse.ServingStatus.
enum class ServingStatus { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };
const char* ServingStatusName(ServingStatus status);

// Asks the server about `service` ("" = the server as a whole). Errors are
// the RPC's (UNAVAILABLE when unreachable, NOT_FOUND for an unknown service).
StatusOr<ServingStatus> CheckHealth(const Connection& connection, const std::string& service,
                                    double timeout_s);

// Wire format helpers (exposed for tests).
std::string EncodeHealthCheckRequest(const std::string& service);
StatusOr<ServingStatus> DecodeHealthCheckResponse(const std::string& bytes);

}  // namespace dms::client
