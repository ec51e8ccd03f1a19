#include "engine/core/sampling_params.h"

#include <cmath>
#include <sstream>

namespace dms {
namespace {
std::string Num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
}  // namespace

Status ValidateSamplingParams(const SamplingParams& p) {
  if (!std::isfinite(p.temperature) || p.temperature < 0) {
    return InvalidArgumentError("temperature must be >= 0 and finite, got " + Num(p.temperature));
  }
  if (!std::isfinite(p.top_p) || p.top_p <= 0 || p.top_p > 1) {
    return InvalidArgumentError("top_p must be in (0, 1], got " + Num(p.top_p));
  }
  if (p.top_k < -1) {
    return InvalidArgumentError("top_k must be >= 0 (0 or -1 disables it), got " + Num(p.top_k));
  }
  if (!std::isfinite(p.min_p) || p.min_p < 0 || p.min_p > 1) {
    return InvalidArgumentError("min_p must be in [0, 1], got " + Num(p.min_p));
  }
  if (!std::isfinite(p.repetition_penalty) || p.repetition_penalty <= 0) {
    return InvalidArgumentError("repetition_penalty must be > 0 and finite, got " +
                                Num(p.repetition_penalty));
  }
  if (!std::isfinite(p.presence_penalty) || p.presence_penalty < -2 || p.presence_penalty > 2) {
    return InvalidArgumentError("presence_penalty must be in [-2, 2], got " + Num(p.presence_penalty));
  }
  if (!std::isfinite(p.frequency_penalty) || p.frequency_penalty < -2 || p.frequency_penalty > 2) {
    return InvalidArgumentError("frequency_penalty must be in [-2, 2], got " +
                                Num(p.frequency_penalty));
  }
  if (p.logprobs < 0 || p.logprobs > 20) {
    return InvalidArgumentError("logprobs must be in [0, 20], got " + Num(p.logprobs));
  }
  return OkStatus();
}

}  // namespace dms
