#include "server/audit_log.h"

#include <spdlog/spdlog.h>

#include "server/logging.h"

namespace dms::server {

void AuditLog::Refused(std::string_view peer, std::string_view rpc, std::string_view reason) {
  const auto now = std::chrono::steady_clock::now();
  int64_t suppressed = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (now - window_start_ >= window_) {
      suppressed = suppressed_;
      suppressed_ = 0;
      logged_ = 0;
      window_start_ = now;
    }
    if (logged_ >= burst_) {
      ++suppressed_;
      return;
    }
    ++logged_;
  }
  if (suppressed > 0) {
    spdlog::warn("auth: {} more refusals were not logged in the last {} s", suppressed,
                 window_.count());
  }
  spdlog::warn("auth: refused peer={} rpc={} reason={}", LogEscape(peer), LogEscape(rpc),
               LogEscape(reason));
}

}  // namespace dms::server
