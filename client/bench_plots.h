// The benchmark's figures: the latency-throughput curve of a sweep and the
// latency CDFs of every run, as SVG (and PNG when rsvg-convert is on PATH).
#pragma once

#include <string>
#include <vector>

#include "client/bench_report.h"
#include "client/svg_plot.h"

namespace dms::client {

// Panels (exposed for tests): TTFT, TPOT, ITL and E2E p50/p90/p99 against
// output tokens/s, one point per run labelled with its load.
std::vector<PlotPanel> LatencyThroughputPanels(const std::vector<RunReport>& runs);
// TTFT, TPOT, ITL and E2E CDFs, one curve per run.
std::vector<PlotPanel> LatencyCdfPanels(const std::vector<RunReport>& runs);

// Writes latency_throughput.svg and latency_cdf.svg into dir (created if
// missing), plus .png copies when a converter exists. Returns the paths.
StatusOr<std::vector<std::string>> WriteBenchPlots(const std::vector<RunReport>& runs, const std::string& dir);

}  // namespace dms::client
