// The audit trail of refused callers: one warn line per refusal with the
// peer, the RPC and the reason (never the token), at most `burst` lines per
// window; what a flood leaves out is counted and reported in one line when
// the next window opens.
//
// Threading: thread-safe.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <string_view>

namespace dms::server {

class AuditLog {
 public:
  explicit AuditLog(int burst = 20, std::chrono::seconds window = std::chrono::seconds(10))
      : burst_(burst), window_(window) {}

  // Logs "auth: refused peer=... rpc=... reason=..." unless over the rate.
  void Refused(std::string_view peer, std::string_view rpc, std::string_view reason);

 private:
  const int burst_;
  const std::chrono::seconds window_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point window_start_{};
  int logged_ = 0;
  int64_t suppressed_ = 0;
};

}  // namespace dms::server
