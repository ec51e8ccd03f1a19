#include "client/stats.h"

#include <algorithm>
#include <cmath>

namespace dms::client {

double PercentileOfSorted(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return NAN;
  const double rank = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(rank));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  const double frac = rank - static_cast<double>(lo);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * frac;
}

Summary Summarize(const std::vector<double>& values) {
  std::vector<double> v;
  v.reserve(values.size());
  for (double x : values) {
    if (std::isfinite(x)) v.push_back(x);
  }
  Summary s;
  s.count = static_cast<int64_t>(v.size());
  if (v.empty()) {
    s.mean = s.std = s.min = s.max = s.p50 = s.p90 = s.p99 = NAN;
    return s;
  }
  std::sort(v.begin(), v.end());
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  double sq = 0;
  for (double x : v) sq += (x - s.mean) * (x - s.mean);
  s.std = std::sqrt(sq / static_cast<double>(v.size()));
  s.min = v.front();
  s.max = v.back();
  s.p50 = PercentileOfSorted(v, 50);
  s.p90 = PercentileOfSorted(v, 90);
  s.p99 = PercentileOfSorted(v, 99);
  return s;
}

std::vector<std::pair<double, double>> EmpiricalCdf(const std::vector<double>& values, size_t max_points) {
  std::vector<double> v;
  for (double x : values) {
    if (std::isfinite(x)) v.push_back(x);
  }
  std::sort(v.begin(), v.end());
  std::vector<std::pair<double, double>> out;
  if (v.empty()) return out;
  const size_t n = v.size();
  const size_t points = std::max<size_t>(2, std::min(max_points, n));
  for (size_t k = 0; k < points; ++k) {
    // Evenly spaced ranks from 0 to n-1.
    const size_t i = n == 1 ? 0 : static_cast<size_t>(std::llround(static_cast<double>(k) * (n - 1) / (points - 1)));
    const double fraction = static_cast<double>(i + 1) / static_cast<double>(n);
    if (!out.empty() && out.back().first == v[i] && out.back().second == fraction) continue;
    out.emplace_back(v[i], fraction);
  }
  return out;
}

}  // namespace dms::client
