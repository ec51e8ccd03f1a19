// The figures of one benchmark run: latency distributions (client clock, and
// the server's own timings beside them), throughput and goodput under SLOs.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "client/bench_runner.h"
#include "client/stats.h"

namespace dms::client {

// Service-level objectives for goodput, in seconds (NaN = not constrained).
struct GoodputSlo {
  double ttft_s = NAN, tpot_s = NAN, e2e_s = NAN;
  bool any() const { return !std::isnan(ttft_s) || !std::isnan(tpot_s) || !std::isnan(e2e_s); }
  // A request meets the SLO when it succeeded and every set bound holds.
  bool Met(const RequestRecord& r) const;
  // "ttft<=0.5s, tpot<=0.05s".
  std::string Describe() const;
};

// "ttft=0.5,tpot=0.05,e2e=10" (seconds).
StatusOr<GoodputSlo> ParseGoodput(const std::string& text);

struct RunSummary {
  LoadSpec spec;
  int64_t launched = 0, completed = 0, failed = 0;
  double duration_s = 0;
  int64_t input_tokens = 0, output_tokens = 0;  // completed requests only
  // Client clock, seconds.
  Summary ttft, tpot, itl, e2e;
  // Server-reported (converted to seconds), beside the client's.
  Summary server_ttft, server_queue, server_e2e, server_decode_tokens_per_s, compression_ratio;
  int64_t preemptions = 0;
  // Per second of the run.
  double request_throughput = 0, input_throughput = 0, output_throughput = 0, total_throughput = 0;
  // Decode throughput while every completed stream decodes at once (see
  // SteadyDecode); NaN when the streams never all overlap.
  double steady_decode_throughput = NAN;
  double steady_window_s = 0;
  GoodputSlo slo;
  double goodput = NAN;           // requests/s meeting the SLO
  double goodput_fraction = NAN;  // of launched requests (failures count against it)
  std::map<std::string, int64_t> errors;  // message -> count
  bool interrupted = false;
};

// The client-observed decode rate of streams that run together: token
// arrivals (send + ttft + the running sum of itl) in the window after the
// last stream's first token and up to the first stream's last token, over
// the window's length. No prefill (TTFT) and no ramp-down is in the figure,
// so it compares with an engine-only decode benchmark at the same batch.
// Returns {tokens per s, window s}; {NaN, 0} without such a window.
std::pair<double, double> SteadyDecode(const std::vector<RequestRecord>& records);

RunSummary SummarizeRun(const LoadSpec& spec, const RunResult& result, const GoodputSlo& slo);

}  // namespace dms::client
