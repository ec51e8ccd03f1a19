// Percentiles and summaries against values computed by hand.
#include "client/stats.h"

#include <gtest/gtest.h>

#include <cmath>

namespace dms::client {
namespace {

TEST(PercentileTest, InterpolatesBetweenClosestRanks) {
  // rank = p/100 * (n-1): n = 5 -> p50 at rank 2, p90 at 3.6, p99 at 3.96.
  const std::vector<double> v = {10, 20, 30, 40, 50};
  EXPECT_DOUBLE_EQ(PercentileOfSorted(v, 0), 10);
  EXPECT_DOUBLE_EQ(PercentileOfSorted(v, 50), 30);
  EXPECT_DOUBLE_EQ(PercentileOfSorted(v, 90), 46);    // 40 + 0.6 * 10
  EXPECT_DOUBLE_EQ(PercentileOfSorted(v, 99), 49.6);  // 40 + 0.96 * 10
  EXPECT_DOUBLE_EQ(PercentileOfSorted(v, 100), 50);
  EXPECT_DOUBLE_EQ(PercentileOfSorted(v, 25), 20);
}

TEST(PercentileTest, EvenCountMedianIsTheMidpoint) {
  EXPECT_DOUBLE_EQ(PercentileOfSorted({1, 2, 3, 4}, 50), 2.5);  // rank 1.5
  EXPECT_DOUBLE_EQ(PercentileOfSorted({1, 2, 3, 4}, 90), 3.7);  // rank 2.7
}

TEST(PercentileTest, SingleAndEmpty) {
  EXPECT_DOUBLE_EQ(PercentileOfSorted({7}, 99), 7);
  EXPECT_TRUE(std::isnan(PercentileOfSorted({}, 50)));
}

TEST(SummaryTest, KnownSample) {
  // Unsorted on purpose; one NaN that must be ignored.
  const std::vector<double> v = {0.4, 0.1, NAN, 0.3, 0.2, 1.0};
  const Summary s = Summarize(v);
  EXPECT_EQ(s.count, 5);
  EXPECT_DOUBLE_EQ(s.mean, 0.4);  // (0.1+0.2+0.3+0.4+1.0)/5
  EXPECT_DOUBLE_EQ(s.min, 0.1);
  EXPECT_DOUBLE_EQ(s.max, 1.0);
  EXPECT_DOUBLE_EQ(s.p50, 0.3);
  EXPECT_NEAR(s.p90, 0.76, 1e-12);   // 0.4 + 0.6 * 0.6
  EXPECT_NEAR(s.p99, 0.976, 1e-12);  // 0.4 + 0.96 * 0.6
  // Population std: deviations -0.3,-0.2,-0.1,0,0.6 -> sum sq 0.5, /5 = 0.1.
  EXPECT_NEAR(s.std, std::sqrt(0.1), 1e-12);
}

TEST(SummaryTest, HundredValues) {
  std::vector<double> v;
  for (int i = 100; i >= 1; --i) v.push_back(i);  // 1..100
  const Summary s = Summarize(v);
  EXPECT_DOUBLE_EQ(s.mean, 50.5);
  EXPECT_DOUBLE_EQ(s.p50, 50.5);  // rank 49.5
  EXPECT_DOUBLE_EQ(s.p90, 90.1);  // rank 89.1 -> 90 + 0.1
  EXPECT_DOUBLE_EQ(s.p99, 99.01); // rank 98.01 -> 99 + 0.01
}

TEST(SummaryTest, EmptyIsAllNaN) {
  const Summary s = Summarize({NAN});
  EXPECT_EQ(s.count, 0);
  EXPECT_TRUE(std::isnan(s.mean));
  EXPECT_TRUE(std::isnan(s.p99));
}

TEST(CdfTest, StepsAndThinning) {
  const auto cdf = EmpiricalCdf({3, 1, 2, 4}, 100);
  ASSERT_EQ(cdf.size(), 4u);
  EXPECT_DOUBLE_EQ(cdf[0].first, 1);
  EXPECT_DOUBLE_EQ(cdf[0].second, 0.25);
  EXPECT_DOUBLE_EQ(cdf[3].first, 4);
  EXPECT_DOUBLE_EQ(cdf[3].second, 1.0);
  std::vector<double> many;
  for (int i = 0; i < 10000; ++i) many.push_back(i);
  const auto thin = EmpiricalCdf(many, 50);
  ASSERT_EQ(thin.size(), 50u);
  EXPECT_DOUBLE_EQ(thin.front().first, 0);
  EXPECT_DOUBLE_EQ(thin.back().first, 9999);
  EXPECT_DOUBLE_EQ(thin.back().second, 1.0);
  for (size_t i = 1; i < thin.size(); ++i) EXPECT_GT(thin[i].second, thin[i - 1].second);
}

}  // namespace
}  // namespace dms::client
