// Status and StatusOr: the error currency across every module boundary.
//
// No exception crosses a module boundary in this project. Functions that can
// fail return Status (or StatusOr<T> when they produce a value). The codes
// mirror gRPC's so the server maps them in exactly one place
// (server/status_mapping.cc). Messages are one line, naming the thing that is
// wrong and what was expected.
#pragma once

#include <cassert>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace dms {

enum class StatusCode : int {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

std::string_view StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(StatusCode code, std::string message)
      : code_(code), message_(std::move(message)) {}

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "INVALID_ARGUMENT: message" (or "OK").
  std::string ToString() const;

  // Returns a copy with "prefix: " prepended to the message (same code).
  Status WithContext(std::string_view prefix) const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

inline Status OkStatus() { return Status(); }
Status CancelledError(std::string message);
Status InvalidArgumentError(std::string message);
Status DeadlineExceededError(std::string message);
Status NotFoundError(std::string message);
Status AlreadyExistsError(std::string message);
Status PermissionDeniedError(std::string message);
Status ResourceExhaustedError(std::string message);
Status FailedPreconditionError(std::string message);
Status AbortedError(std::string message);
Status OutOfRangeError(std::string message);
Status UnimplementedError(std::string message);
Status InternalError(std::string message);
Status UnavailableError(std::string message);
Status DataLossError(std::string message);
Status UnauthenticatedError(std::string message);

// Holds either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(const Status& status) : data_(status) {  // NOLINT: implicit
    assert(!status.ok() && "StatusOr constructed from an OK status");
    if (std::get<Status>(data_).ok()) {
      data_ = InternalError("StatusOr constructed from an OK status");
    }
  }
  StatusOr(Status&& status) : data_(std::move(status)) {  // NOLINT: implicit
    if (std::get<Status>(data_).ok()) {
      data_ = InternalError("StatusOr constructed from an OK status");
    }
  }
  StatusOr(const T& value) : data_(value) {}        // NOLINT: implicit
  StatusOr(T&& value) : data_(std::move(value)) {}  // NOLINT: implicit
  template <typename U,
            typename = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                        !std::is_same_v<std::decay_t<U>, T> &&
                                        !std::is_same_v<std::decay_t<U>, Status>>>
  StatusOr(U&& value) : data_(T(std::forward<U>(value))) {}  // NOLINT

  bool ok() const { return std::holds_alternative<T>(data_); }
  Status status() const {
    return ok() ? OkStatus() : std::get<Status>(data_);
  }
  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> data_;
};

}  // namespace dms

#define DMS_STATUS_CONCAT_INNER_(a, b) a##b
#define DMS_STATUS_CONCAT_(a, b) DMS_STATUS_CONCAT_INNER_(a, b)

#define DMS_RETURN_IF_ERROR(expr)                 \
  do {                                            \
    ::dms::Status dms_status_tmp_ = (expr);       \
    if (!dms_status_tmp_.ok()) return dms_status_tmp_; \
  } while (0)

#define DMS_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

#define DMS_ASSIGN_OR_RETURN(lhs, expr) \
  DMS_ASSIGN_OR_RETURN_IMPL_(DMS_STATUS_CONCAT_(dms_statusor_, __LINE__), lhs, expr)
