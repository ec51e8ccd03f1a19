// The open-loop arrival process: mean rate and burstiness (coefficient of
// variation of the gaps), checked statistically with fixed seeds.
#include "client/arrivals.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace dms::client {
namespace {

struct GapStats {
  double mean = 0, cv = 0;
};

GapStats Sample(double rate, double burstiness, uint64_t seed, int n) {
  auto p = ArrivalProcess::Create(rate, burstiness, seed);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  std::vector<double> gaps(n);
  double sum = 0;
  for (double& g : gaps) {
    g = p->NextGap();
    EXPECT_GE(g, 0);
    sum += g;
  }
  GapStats s;
  s.mean = sum / n;
  double sq = 0;
  for (double g : gaps) sq += (g - s.mean) * (g - s.mean);
  s.cv = std::sqrt(sq / (n - 1)) / s.mean;
  return s;
}

// With n = 200000 samples the standard error of the mean gap is about
// cv/sqrt(n) = 0.2% of it; the bounds below are several standard errors wide.
TEST(ArrivalsTest, PoissonMeanRateAndCvOfOne) {
  const GapStats s = Sample(/*rate=*/8.0, /*burstiness=*/1.0, /*seed=*/42, 200000);
  EXPECT_NEAR(1.0 / s.mean, 8.0, 8.0 * 0.01);  // requests/s
  EXPECT_NEAR(s.cv, 1.0, 0.02);                // exponential gaps
}

TEST(ArrivalsTest, BurstyArrivalsKeepTheRate) {
  // shape 0.25: CV = 1/sqrt(0.25) = 2.
  const GapStats s = Sample(5.0, 0.25, 7, 200000);
  EXPECT_NEAR(1.0 / s.mean, 5.0, 5.0 * 0.02);
  EXPECT_NEAR(s.cv, 2.0, 0.06);
}

TEST(ArrivalsTest, RegularArrivals) {
  // shape 4: CV = 0.5.
  const GapStats s = Sample(100.0, 4.0, 3, 200000);
  EXPECT_NEAR(1.0 / s.mean, 100.0, 1.0);
  EXPECT_NEAR(s.cv, 0.5, 0.01);
}

TEST(ArrivalsTest, CountsInWindowsArePoisson) {
  // For a Poisson process, counts in unit windows have variance = mean.
  auto p = ArrivalProcess::Create(20.0, 1.0, 99);
  ASSERT_TRUE(p.ok());
  const int windows = 5000;
  std::vector<int> counts(windows, 0);
  double t = p->NextGap();
  while (t < windows) {
    ++counts[static_cast<int>(t)];
    t += p->NextGap();
  }
  double mean = 0, var = 0;
  for (int c : counts) mean += c;
  mean /= windows;
  for (int c : counts) var += (c - mean) * (c - mean);
  var /= windows - 1;
  EXPECT_NEAR(mean, 20.0, 0.4);
  EXPECT_NEAR(var / mean, 1.0, 0.08);
}

TEST(ArrivalsTest, SameSeedSameArrivals) {
  auto a = ArrivalProcess::Create(3.0, 0.5, 11);
  auto b = ArrivalProcess::Create(3.0, 0.5, 11);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a->NextGap(), b->NextGap());
}

TEST(ArrivalsTest, InfiniteRateSendsAtOnce) {
  auto p = ArrivalProcess::Create(INFINITY, 1.0, 0);
  ASSERT_TRUE(p.ok());
  for (int i = 0; i < 10; ++i) EXPECT_EQ(p->NextGap(), 0.0);
}

TEST(ArrivalsTest, BadParametersAreNamed) {
  EXPECT_EQ(ArrivalProcess::Create(0, 1, 0).status().message(), "--request-rate: expected > 0 requests/s, found 0");
  EXPECT_EQ(ArrivalProcess::Create(-2, 1, 0).status().message(), "--request-rate: expected > 0 requests/s, found -2");
  EXPECT_EQ(ArrivalProcess::Create(1, 0, 0).status().message(), "--burstiness: expected a finite number > 0, found 0");
  EXPECT_EQ(ArrivalProcess::Create(1, INFINITY, 0).status().message(),
            "--burstiness: expected a finite number > 0, found inf");
}

}  // namespace
}  // namespace dms::client
