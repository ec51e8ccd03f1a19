// Request arrival times for open-loop load: a Poisson process at `rate`
// requests/s when burstiness is 1, otherwise gamma-distributed gaps with
// shape = burstiness and the same mean 1/rate. The gaps' coefficient of
// variation is 1/sqrt(burstiness): below 1 is burstier than Poisson, above 1
// more regular.
#pragma once

#include <cstdint>
#include <random>

#include "common/status.h"

namespace dms::client {

class ArrivalProcess {
 public:
  // rate: requests/s (> 0, may be infinite: every gap 0); burstiness > 0.
  static StatusOr<ArrivalProcess> Create(double rate, double burstiness, uint64_t seed);

  // Seconds until the next request.
  double NextGap();

  double rate() const { return rate_; }
  double burstiness() const { return burstiness_; }

 private:
  ArrivalProcess(double rate, double burstiness, uint64_t seed);

  double rate_;
  double burstiness_;
  std::mt19937_64 rng_;
  std::gamma_distribution<double> gamma_;
};

}  // namespace dms::client
