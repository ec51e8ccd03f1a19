#include "server/decode_rate.h"

#include <prometheus/metric_family.h>

#include <algorithm>

namespace dms::server {

DecodeRate::DecodeRate(std::chrono::seconds window)
    : window_(window), start_(std::chrono::steady_clock::now()) {}

void DecodeRate::Add(TimePoint now, int64_t total_tokens) {
  std::lock_guard<std::mutex> lock(mu_);
  samples_.emplace_back(now, total_tokens);
  // Keep one sample at or before the window's start as the baseline.
  while (samples_.size() > 2 && samples_[1].first <= now - window_) samples_.pop_front();
}

double DecodeRate::Rate(TimePoint now) const {
  std::lock_guard<std::mutex> lock(mu_);
  const TimePoint from = now - window_;
  while (samples_.size() > 1 && samples_[1].first <= from) samples_.pop_front();
  if (samples_.empty()) return 0.0;
  // Tokens counted after the baseline sample were generated after it; those
  // of a baseline inside the window (the first step ever) count too.
  const int64_t before = samples_.front().first <= from ? samples_.front().second : 0;
  const int64_t tokens = samples_.back().second - before;
  const double seconds = std::chrono::duration<double>(std::min(now - start_, now - from)).count();
  return seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0;
}

std::vector<prometheus::MetricFamily> DecodeRate::Collect() const {
  prometheus::MetricFamily family;
  family.name = "dms_decode_tokens_per_second";
  family.help = "Generated tokens per second over the last 10 s";
  family.type = prometheus::MetricType::Gauge;
  family.metric.emplace_back();
  family.metric.back().gauge.value = Rate(std::chrono::steady_clock::now());
  return {family};
}

}  // namespace dms::server
