#include "client/bench_plots.h"

#include <cstdlib>
#include <filesystem>

#include "client/client_util.h"

namespace dms::client {
namespace {

// "c=4", "r=2.5", "r=inf": short labels next to the curve's points.
std::string ShortLabel(const LoadSpec& spec) {
  if (spec.mode == LoadSpec::Mode::kConcurrency) return Format("c=%d", spec.concurrency);
  return std::isfinite(spec.rate) ? Format("r=%g", spec.rate) : "r=inf";
}

std::vector<double> Ms(const std::vector<double>& seconds) {
  std::vector<double> out;
  for (double s : seconds) out.push_back(s * 1e3);
  return out;
}

bool HaveProgram(const char* name) {
  const char* path = std::getenv("PATH");
  if (!path) return false;
  std::string p(path);
  size_t pos = 0;
  while (pos <= p.size()) {
    const size_t colon = std::min(p.find(':', pos), p.size());
    const std::filesystem::path candidate = std::filesystem::path(p.substr(pos, colon - pos)) / name;
    std::error_code ec;
    if (std::filesystem::is_regular_file(candidate, ec)) return true;
    pos = colon + 1;
  }
  return false;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

std::vector<PlotPanel> LatencyThroughputPanels(const std::vector<RunReport>& runs) {
  struct Metric {
    const char* title;
    const Summary RunSummary::*summary;
  };
  const Metric metrics[] = {{"Time to first token", &RunSummary::ttft},
                            {"Time per output token", &RunSummary::tpot},
                            {"Inter-token latency", &RunSummary::itl},
                            {"End-to-end latency", &RunSummary::e2e}};
  std::vector<PlotPanel> panels;
  for (const Metric& m : metrics) {
    PlotPanel p;
    p.title = m.title;
    p.x_label = "output throughput (tokens/s)";
    p.y_label = std::string(m.title) + " (ms)";
    for (const auto& [name, member] : {std::pair{"p50", &Summary::p50}, std::pair{"p90", &Summary::p90},
                                       std::pair{"p99", &Summary::p99}}) {
      PlotSeries s;
      s.name = name;
      for (const RunReport& r : runs) {
        s.x.push_back(r.summary.output_throughput);
        s.y.push_back((r.summary.*(m.summary)).*member * 1e3);
        s.point_labels.push_back(name == std::string("p50") ? ShortLabel(r.summary.spec) : "");
      }
      p.series.push_back(std::move(s));
    }
    panels.push_back(std::move(p));
  }
  return panels;
}

std::vector<PlotPanel> LatencyCdfPanels(const std::vector<RunReport>& runs) {
  const char* titles[] = {"Time to first token", "Time per output token", "Inter-token latency",
                          "End-to-end latency"};
  std::vector<PlotPanel> panels(4);
  for (int k = 0; k < 4; ++k) {
    panels[k].title = std::string(titles[k]) + " CDF";
    panels[k].x_label = std::string(titles[k]) + " (ms)";
    panels[k].y_label = "fraction of requests";
    if (k == 2) panels[k].y_label = "fraction of tokens";
    panels[k].y_max = 1.0;
    panels[k].legend_bottom_right = true;
  }
  std::vector<double> all_itl;  // a few stalls would squeeze the ITL axis
  for (const RunReport& r : runs) {
    std::vector<double> ttft, tpot, itl, e2e;
    for (const RequestRecord& rec : r.result.records) {
      if (!rec.ok) continue;
      ttft.push_back(rec.ttft_s);
      tpot.push_back(rec.Tpot());
      e2e.push_back(rec.e2e_s);
      itl.insert(itl.end(), rec.itl_s.begin(), rec.itl_s.end());
    }
    all_itl.insert(all_itl.end(), itl.begin(), itl.end());
    const std::vector<double>* values[] = {&ttft, &tpot, &itl, &e2e};
    for (int k = 0; k < 4; ++k) {
      PlotSeries s;
      s.name = r.summary.spec.Label();
      s.markers = false;
      s.step = true;
      const auto cdf = EmpiricalCdf(Ms(*values[k]), 400);
      if (!cdf.empty()) {  // the staircase rises from 0 at the smallest value
        s.x.push_back(cdf.front().first);
        s.y.push_back(0);
      }
      for (const auto& [v, f] : cdf) {
        s.x.push_back(v);
        s.y.push_back(f);
      }
      panels[k].series.push_back(std::move(s));
    }
  }
  const Summary itl = Summarize(all_itl);
  if (itl.count > 0 && itl.p99 > 0 && itl.max > 2 * itl.p99) {
    panels[2].x_max = 1.5 * itl.p99 * 1e3;
    panels[2].x_label += ", cut at 1.5 x p99";
  }
  return panels;
}

StatusOr<std::vector<std::string>> WriteBenchPlots(const std::vector<RunReport>& runs, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return InternalError("--plot-dir: cannot create '" + dir + "': " + ec.message());
  std::vector<std::string> written;
  const std::string what = runs.size() > 1 ? "sweep" : "run";
  const std::pair<std::string, std::string> files[] = {
      {"latency_throughput", RenderSvg("dms bench: latency vs throughput (" + what + " of " +
                                           std::to_string(runs.size()) + ")",
                                       LatencyThroughputPanels(runs), SvgLayout{})},
      {"latency_cdf", RenderSvg("dms bench: latency distributions", LatencyCdfPanels(runs), SvgLayout{})}};
  const bool png = HaveProgram("rsvg-convert");
  for (const auto& [name, svg] : files) {
    const std::string path = (std::filesystem::path(dir) / (name + ".svg")).string();
    DMS_RETURN_IF_ERROR(WriteTextFile(path, svg));
    written.push_back(path);
    if (png) {
      const std::string out = (std::filesystem::path(dir) / (name + ".png")).string();
      const std::string cmd = "rsvg-convert -b white -o " + ShellQuote(out) + " " + ShellQuote(path) + " 2>/dev/null";
      if (std::system(cmd.c_str()) == 0) written.push_back(out);
    }
  }
  return written;
}

}  // namespace dms::client
