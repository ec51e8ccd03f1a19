// gRPC server reflection, v1 and v1alpha (grpcurl and newer clients ask for
// v1, older ones for v1alpha), served by us so that it follows the same auth
// rules as every other RPC: each stream is authorized when it opens, and a
// malformed request ends it with INVALID_ARGUMENT. Descriptors come from the
// generated descriptor pool.
//
// Threading: one request at a time per stream (read, answer, read again);
// streams are independent.
#pragma once

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "server/auth.h"

namespace dms::server {

// Both reflection services, listing `services` (full names) in
// list_services. auth is not owned and must outlive the services.
std::vector<std::unique_ptr<grpc::Service>> MakeReflectionServices(
    const RequestAuthorizer* auth, std::vector<std::string> services);

}  // namespace dms::server
