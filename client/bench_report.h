// Benchmark results as a readable table, JSON and CSV.
//
// JSON (one run): {"label", "config", "launched", "completed", "failed",
// "duration_s", "input_tokens", "output_tokens", "ttft", "tpot", "itl", "e2e"
// (each {"mean", "p50", "p90", "p99", "min", "max", "std", "count"}, seconds),
// "throughput" {"requests_per_s", "input_tokens_per_s", "output_tokens_per_s",
// "total_tokens_per_s"}, "goodput" (null or {"slo", "requests_per_s",
// "fraction"}), "server" {"ttft", "queue", "e2e", "decode_tokens_per_s",
// "compression_ratio", "preemptions"}, "errors", "per_request" [...]}.
// A sweep: {"sweep": "concurrency"|"request_rate", "values": [...], "runs": [run, ...]}.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "client/bench_summary.h"

namespace dms::client {

// What a run was configured with, beyond its LoadSpec (for the JSON "config").
struct BenchConfig {
  std::string target;
  std::string dataset;
  int64_t warmup_requests = 0;
  uint64_t seed = 0;
  std::string sampling;  // the sampling fields sent ("temperature 0.6 top_p 0.95 top_k 20", unset ones left out)
};

struct RunReport {
  RunSummary summary;
  RunResult result;
};

nlohmann::json SummaryJson(const Summary& s);
nlohmann::json RunJson(const RunReport& run, const BenchConfig& config);
// One run: the run object; several: the sweep object.
nlohmann::json BenchJson(const std::vector<RunReport>& runs, const BenchConfig& config);

// A header line and one line per run (RFC 4180: fields with commas quoted).
std::string BenchCsv(const std::vector<RunReport>& runs);

// The detailed table of one run (latencies in ms).
std::string RunTable(const RunSummary& s);
// One line per run, for sweeps.
std::string SweepTable(const std::vector<RunReport>& runs);

}  // namespace dms::client
