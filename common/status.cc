#include "common/status.h"

namespace dms {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kCancelled: return "CANCELLED";
    case StatusCode::kUnknown: return "UNKNOWN";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kAborted: return "ABORTED";
    case StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    case StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case StatusCode::kInternal: return "INTERNAL";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kDataLoss: return "DATA_LOSS";
    case StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
  }
  return "UNKNOWN";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusCodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

Status Status::WithContext(std::string_view prefix) const {
  if (ok()) return *this;
  std::string msg(prefix);
  msg += ": ";
  msg += message_;
  return Status(code_, std::move(msg));
}

#define DMS_DEFINE_ERROR_(Name, Code) \
  Status Name(std::string message) { return Status(StatusCode::Code, std::move(message)); }

DMS_DEFINE_ERROR_(CancelledError, kCancelled)
DMS_DEFINE_ERROR_(InvalidArgumentError, kInvalidArgument)
DMS_DEFINE_ERROR_(DeadlineExceededError, kDeadlineExceeded)
DMS_DEFINE_ERROR_(NotFoundError, kNotFound)
DMS_DEFINE_ERROR_(AlreadyExistsError, kAlreadyExists)
DMS_DEFINE_ERROR_(PermissionDeniedError, kPermissionDenied)
DMS_DEFINE_ERROR_(ResourceExhaustedError, kResourceExhausted)
DMS_DEFINE_ERROR_(FailedPreconditionError, kFailedPrecondition)
DMS_DEFINE_ERROR_(AbortedError, kAborted)
DMS_DEFINE_ERROR_(OutOfRangeError, kOutOfRange)
DMS_DEFINE_ERROR_(UnimplementedError, kUnimplemented)
DMS_DEFINE_ERROR_(InternalError, kInternal)
DMS_DEFINE_ERROR_(UnavailableError, kUnavailable)
DMS_DEFINE_ERROR_(DataLossError, kDataLoss)
DMS_DEFINE_ERROR_(UnauthenticatedError, kUnauthenticated)

#undef DMS_DEFINE_ERROR_

}  // namespace dms
