// Summary statistics of latency samples: mean, spread and percentiles.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace dms::client {

// The p-th percentile (0 <= p <= 100) of sorted values, interpolating
// linearly between the two closest ranks: rank = p/100 * (n - 1) (numpy's
// default, also vLLM's). NaN for an empty input.
double PercentileOfSorted(const std::vector<double>& sorted, double p);

struct Summary {
  int64_t count = 0;
  double mean = 0, std = 0, min = 0, max = 0;  // std: population standard deviation
  double p50 = 0, p90 = 0, p99 = 0;
};

// Summary of the finite values (NaNs are skipped); all NaN when none remain.
Summary Summarize(const std::vector<double>& values);

// The empirical CDF as (value, fraction <= value) steps over the sorted
// finite values, thinned to at most max_points evenly spaced ranks (the
// first and last always kept).
std::vector<std::pair<double, double>> EmpiricalCdf(const std::vector<double>& values, size_t max_points);

}  // namespace dms::client
