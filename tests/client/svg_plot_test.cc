// The hand-written SVG: well-formed XML, sensible ticks, escaped text, one
// polyline per series, and the benchmark figures written to disk.
#include "client/svg_plot.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "client/bench_plots.h"
#include "tests/client/xml_check.h"
#include "tests/test_util.h"

namespace dms::client {
namespace {

using dms::testing::CheckXml;
using dms::testing::XmlElementCount;

TEST(NiceTicksTest, RoundSteps) {
  EXPECT_EQ(NiceTicks(0, 100, 5), (std::vector<double>{0, 20, 40, 60, 80, 100}));
  const std::vector<double> unit = NiceTicks(0, 1, 5);
  ASSERT_EQ(unit.size(), 6u);
  for (size_t i = 0; i < unit.size(); ++i) EXPECT_NEAR(unit[i], 0.2 * i, 1e-12);
  const std::vector<double> t = NiceTicks(3.2, 47.9, 6);
  EXPECT_DOUBLE_EQ(t.front(), 0);
  EXPECT_DOUBLE_EQ(t.back(), 50);
  EXPECT_DOUBLE_EQ(t[1] - t[0], 10);
  const std::vector<double> small = NiceTicks(0.0012, 0.0031, 4);
  EXPECT_LE(small.front(), 0.0012);
  EXPECT_GE(small.back(), 0.0031);
  EXPECT_EQ(NiceTicks(5, 5, 4), (std::vector<double>{0, 1}));  // degenerate: caller pads
}

TEST(SvgTest, EscapingAndLabels) {
  EXPECT_EQ(XmlEscape("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
  EXPECT_EQ(TickLabel(0), "0");
  EXPECT_EQ(TickLabel(2.5), "2.5");
  EXPECT_EQ(TickLabel(1200), "1200");
  EXPECT_EQ(TickLabel(1.5e6), "1.5e+06");
}

TEST(SvgTest, WellFormedWithOnePolylinePerSeries) {
  PlotPanel p;
  p.title = "Latency <p99> & friends";
  p.x_label = "tokens/s";
  p.y_label = "ms";
  PlotSeries a{"p50", {1, 2, 3}, {10, 20, 15}, {"c=1", "c=2", "c=4"}, true, false};
  PlotSeries b{"p99 \"tail\"", {1, 2, NAN}, {30, NAN, 40}, {}, false, true};
  p.series = {a, b};
  PlotPanel empty;
  empty.title = "nothing";
  const std::string svg = RenderSvg("title & more", {p, empty}, SvgLayout{});
  XmlElementCount counts;
  EXPECT_EQ(CheckXml(svg, &counts), "") << svg;
  EXPECT_EQ(counts.root, "svg");
  EXPECT_EQ(counts.by_name["polyline"], 2);
  EXPECT_EQ(counts.by_name["circle"], 3);  // markers only for series a
  EXPECT_NE(svg.find("xmlns=\"http://www.w3.org/2000/svg\""), std::string::npos);
  EXPECT_NE(svg.find("Latency &lt;p99&gt; &amp; friends"), std::string::npos);
  EXPECT_NE(svg.find(">no data<"), std::string::npos);  // the empty panel says so
  EXPECT_NE(svg.find(">c=4<"), std::string::npos);
}

TEST(SvgTest, CutAxisStopsLinesAtTheEdge) {
  PlotPanel p;
  p.x_max = 10;
  p.y_max = 1;
  p.legend_bottom_right = true;
  p.series = {PlotSeries{"cdf", {1, 5, 9, 400}, {0.25, 0.5, 0.75, 1.0}, {}, false, true}};
  const std::string svg = RenderSvg("", {p}, SvgLayout{1, 400, 300});
  EXPECT_EQ(CheckXml(svg), "");
  // Plot area x from 66 to 400-18 = 382; the axis ends at the tick 10.
  const size_t at = svg.find("<polyline");
  ASSERT_NE(at, std::string::npos);
  const std::string line = svg.substr(at, svg.find("/>", at) - at);
  EXPECT_NE(line.find("382.00,"), std::string::npos) << line;  // runs to the edge
  EXPECT_EQ(line.find("NaN"), std::string::npos);
  EXPECT_NE(svg.find(">10<"), std::string::npos);   // last x tick
  EXPECT_EQ(svg.find(">400<"), std::string::npos);  // the tail is not on the axis
}

TEST(SvgTest, XmlCheckerCatchesMistakes) {
  EXPECT_NE(CheckXml("<svg><g></svg>"), "");
  EXPECT_NE(CheckXml("<svg a=1></svg>"), "");
  EXPECT_NE(CheckXml("<svg>a & b</svg>"), "");
  EXPECT_NE(CheckXml("<svg></svg><svg></svg>"), "");
  EXPECT_NE(CheckXml("<svg x=\"1\" x=\"2\"/>"), "");
  EXPECT_EQ(CheckXml("<?xml version=\"1.0\"?>\n<svg><g a='1'/>&amp;</svg>\n"), "");
}

RequestRecord Rec(double ttft, double e2e) {
  RequestRecord r;
  r.ok = true;
  r.ttft_s = ttft;
  r.e2e_s = e2e;
  r.output_tokens = 5;
  r.itl_s.assign(4, (e2e - ttft) / 4);
  return r;
}

TEST(BenchPlotsTest, SweepFiguresAreWrittenAndValid) {
  std::vector<RunReport> runs;
  for (int c : {1, 2, 4}) {
    RunReport run;
    run.result.duration_s = 1;
    for (int i = 0; i < 20; ++i) run.result.records.push_back(Rec(0.01 * c + 0.001 * i, 0.2 * c + 0.01 * i));
    LoadSpec spec;
    spec.concurrency = c;
    run.summary = SummarizeRun(spec, run.result, GoodputSlo());
    runs.push_back(std::move(run));
  }
  const auto lt = LatencyThroughputPanels(runs);
  ASSERT_EQ(lt.size(), 4u);
  ASSERT_EQ(lt[0].series.size(), 3u);  // p50, p90, p99
  EXPECT_EQ(lt[0].series[0].x.size(), 3u);
  EXPECT_DOUBLE_EQ(lt[0].series[0].x[2], runs[2].summary.output_throughput);
  EXPECT_DOUBLE_EQ(lt[0].series[0].y[2], runs[2].summary.ttft.p50 * 1e3);
  EXPECT_EQ(lt[0].series[0].point_labels[1], "c=2");
  const auto cdf = LatencyCdfPanels(runs);
  ASSERT_EQ(cdf.size(), 4u);
  ASSERT_EQ(cdf[0].series.size(), 3u);
  EXPECT_DOUBLE_EQ(cdf[0].series[0].y.front(), 0);
  EXPECT_DOUBLE_EQ(cdf[0].series[0].y.back(), 1);

  EXPECT_FALSE(cdf[2].x_max.has_value());  // no stall: the ITL axis shows everything
  EXPECT_TRUE(cdf[0].legend_bottom_right);

  // One 5 s stall among 240 gaps of 50-250 ms would squeeze the ITL axis: cut it.
  std::vector<RunReport> stalled = runs;
  stalled[0].result.records[0].itl_s[0] = 5.0;
  const auto cut = LatencyCdfPanels(stalled);
  ASSERT_TRUE(cut[2].x_max.has_value());
  EXPECT_LT(*cut[2].x_max, 1000.0);  // ms, well short of the 5000 ms stall
  EXPECT_NE(cut[2].x_label.find("cut at 1.5 x p99"), std::string::npos);

  dms::testing::TempDir dir;
  const std::string out = dir.File("plots/nested");
  auto files = WriteBenchPlots(runs, out);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  ASSERT_GE(files->size(), 2u);
  for (const char* name : {"latency_throughput.svg", "latency_cdf.svg"}) {
    const std::string svg = dms::testing::ReadFile(out + "/" + name);
    XmlElementCount counts;
    EXPECT_EQ(CheckXml(svg, &counts), "") << name;
    EXPECT_EQ(counts.root, "svg");
    EXPECT_EQ(counts.by_name["polyline"], 12) << name;  // 4 panels x 3 series
  }
}

}  // namespace
}  // namespace dms::client
