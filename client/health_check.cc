#include "client/health_check.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include <future>

#include "client/client_util.h"

namespace dms::client {
namespace {

void PutVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

bool GetVarint(const std::string& in, size_t* pos, uint64_t* v) {
  *v = 0;
  for (int shift = 0; shift < 64 && *pos < in.size(); shift += 7) {
    const auto b = static_cast<uint8_t>(in[(*pos)++]);
    *v |= static_cast<uint64_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return true;
  }
  return false;
}

}  // namespace

const char* ServingStatusName(ServingStatus status) {
  switch (status) {
    case ServingStatus::kUnknown: return "UNKNOWN";
    case ServingStatus::kServing: return "SERVING";
    case ServingStatus::kNotServing: return "NOT_SERVING";
    case ServingStatus::kServiceUnknown: return "SERVICE_UNKNOWN";
  }
  return "UNKNOWN";
}

std::string EncodeHealthCheckRequest(const std::string& service) {
  std::string out;
  if (service.empty()) return out;  // proto3: the default value is not written
  out.push_back(0x0a);              // field 1, length-delimited
  PutVarint(service.size(), &out);
  out += service;
  return out;
}

StatusOr<ServingStatus> DecodeHealthCheckResponse(const std::string& bytes) {
  ServingStatus status = ServingStatus::kUnknown;
  size_t pos = 0;
  while (pos < bytes.size()) {
    uint64_t key = 0, value = 0;
    if (!GetVarint(bytes, &pos, &key)) return DataLossError("health response: truncated field key");
    const uint64_t field = key >> 3, wire = key & 7;
    if (wire == 0) {
      if (!GetVarint(bytes, &pos, &value)) return DataLossError("health response: truncated varint");
      if (field == 1) status = value <= 3 ? static_cast<ServingStatus>(value) : ServingStatus::kUnknown;
    } else if (wire == 2) {
      if (!GetVarint(bytes, &pos, &value) || value > bytes.size() - pos) {
        return DataLossError("health response: truncated length-delimited field");
      }
      pos += value;
    } else if (wire == 1 || wire == 5) {
      const size_t n = wire == 1 ? 8 : 4;
      if (bytes.size() - pos < n) return DataLossError("health response: truncated fixed field");
      pos += n;
    } else {
      return DataLossError("health response: unexpected wire type " + std::to_string(wire));
    }
  }
  return status;
}

StatusOr<ServingStatus> CheckHealth(const Connection& connection, const std::string& service,
                                    double timeout_s) {
  grpc::GenericStub stub(connection.channel());
  grpc::ClientContext context;
  connection.Prepare(&context, timeout_s);
  const std::string request_bytes = EncodeHealthCheckRequest(service);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&done](grpc::Status s) { done.set_value(std::move(s)); });
  const grpc::Status status = done.get_future().get();
  if (!status.ok()) {
    return FromGrpc(status, "health check of " + connection.target() +
                                (service.empty() ? std::string() : " (service '" + service + "')"));
  }
  std::vector<grpc::Slice> slices;
  if (!response.Dump(&slices).ok()) return DataLossError("health response: unreadable bytes");
  std::string bytes;
  for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return DecodeHealthCheckResponse(bytes);
}

}  // namespace dms::client
