// The one place where engine Status codes become gRPC statuses.
#pragma once

#include <grpcpp/support/status.h>

#include "common/status.h"

namespace dms::server {

grpc::Status ToGrpcStatus(const Status& status);

}  // namespace dms::server
