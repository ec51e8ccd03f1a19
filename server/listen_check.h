// One clear line for why the server cannot start listening: the address is
// in use (another dms-server, say), not ours to bind, or the TLS certificate
// and key do not belong together. gRPC itself only reports that it failed.
//
// Stateless; any thread.
#pragma once

#include <string>

#include "common/status.h"

namespace dms::server {

// Why `address` ("host:port", "[v6]:port") cannot be bound now, named after
// `flag` ("--listen 0.0.0.0:50051: address already in use (another server is
// listening there)"); OK when a plain bind succeeds (or the address is not a
// TCP one this check understands).
Status CheckCanListen(const std::string& flag, const std::string& address);

// INVALID_ARGUMENT when the PEM private key is not the PEM certificate's key
// (or either cannot be read as one).
Status CheckTlsKeyPair(const std::string& cert_pem, const std::string& key_pem);

}  // namespace dms::server
