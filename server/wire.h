// Request and response messages on the wire. Every service of the server
// takes its requests as raw bytes (gRPC's raw callback methods) and parses
// them here, so that a malformed message gets INVALID_ARGUMENT naming what is
// wrong, after authentication, instead of gRPC's bare UNIMPLEMENTED, and
// protobuf never logs the failure on stderr.
//
// Stateless; any thread.
#pragma once

#include <google/protobuf/message.h>
#include <grpcpp/support/byte_buffer.h>

#include "common/status.h"

namespace dms::server {

// Parses `buffer` into `message`. INVALID_ARGUMENT with the field's path when
// a string field holds invalid UTF-8 ("messages[1].content is not valid
// UTF-8"), or when the bytes are no message of that type.
Status ParseMessage(const grpc::ByteBuffer& buffer, google::protobuf::Message* message);

// The same over contiguous bytes.
Status ParseMessageBytes(std::string_view bytes, google::protobuf::Message* message);

// Serializes `message` into `buffer` (replacing its contents).
void SerializeMessage(const google::protobuf::Message& message, grpc::ByteBuffer* buffer);

}  // namespace dms::server
