#include "client/arrivals.h"

#include <cmath>

#include "client/client_util.h"

namespace dms::client {

StatusOr<ArrivalProcess> ArrivalProcess::Create(double rate, double burstiness, uint64_t seed) {
  if (!(rate > 0)) return InvalidArgumentError(Format("--request-rate: expected > 0 requests/s, found %g", rate));
  if (!(burstiness > 0) || !std::isfinite(burstiness)) {
    return InvalidArgumentError(Format("--burstiness: expected a finite number > 0, found %g", burstiness));
  }
  return ArrivalProcess(rate, burstiness, seed);
}

ArrivalProcess::ArrivalProcess(double rate, double burstiness, uint64_t seed)
    : rate_(rate),
      burstiness_(burstiness),
      rng_(seed),
      // Mean of gamma(k, theta) is k * theta = 1 / rate.
      gamma_(burstiness, std::isfinite(rate) ? 1.0 / (rate * burstiness) : 1.0) {}

double ArrivalProcess::NextGap() {
  if (!std::isfinite(rate_)) return 0;
  return gamma_(rng_);
}

}  // namespace dms::client
