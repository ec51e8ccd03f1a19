// dms_decode_tokens_per_second: generated tokens per second over the last
// 10 s, computed when Prometheus scrapes (not when the engine steps), so an
// idle server reads 0 instead of its last busy rate.
//
// Threading: Add (engine thread) and Collect (the exposer's threads) may run
// concurrently.
#pragma once

#include <prometheus/collectable.h>

#include <chrono>
#include <deque>
#include <mutex>
#include <utility>
#include <vector>

namespace dms::server {

class DecodeRate : public prometheus::Collectable {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  explicit DecodeRate(std::chrono::seconds window = std::chrono::seconds(10));

  // The engine's running total of generated tokens at `now`.
  void Add(TimePoint now, int64_t total_tokens);
  // Tokens generated in (now - window, now] per second of window (the
  // server's age when younger than the window).
  double Rate(TimePoint now) const;

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const std::chrono::seconds window_;
  const TimePoint start_;
  mutable std::mutex mu_;
  // (time, total); the oldest entry is the last one at or before the window.
  mutable std::deque<std::pair<TimePoint, int64_t>> samples_;
};

}  // namespace dms::server
