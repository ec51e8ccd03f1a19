// Run summaries (throughput, goodput) and their JSON/CSV/table forms, from
// synthetic request records with known values.
#include "client/bench_report.h"

#include <gtest/gtest.h>

#include <sstream>

#include "client/progress_bar.h"

namespace dms::client {
namespace {

RequestRecord Record(double send, double ttft, double e2e, int64_t out, int64_t prompt) {
  RequestRecord r;
  r.ok = true;
  r.finish_reason = "length";
  r.send_s = send;
  r.ttft_s = ttft;
  r.e2e_s = e2e;
  r.output_tokens = out;
  r.prompt_tokens = prompt;
  r.itl_s.assign(static_cast<size_t>(out - 1), (e2e - ttft) / (out - 1));
  r.server_ttft_ms = ttft * 1e3 - 1;
  r.server_queue_ms = 0.5;
  r.server_e2e_ms = e2e * 1e3 - 1;
  r.server_decode_tokens_per_s = 50;
  r.compression_ratio = 2;
  return r;
}

RunReport MakeRun(int concurrency) {
  RunReport run;
  run.result.duration_s = 2.0;
  // TTFTs 0.1, 0.2, 0.3, 0.4; 11 tokens each; TPOT = (e2e - ttft) / 10.
  run.result.records = {Record(0.0, 0.1, 1.1, 11, 20), Record(0.1, 0.2, 0.7, 11, 30),
                        Record(0.2, 0.3, 2.3, 11, 40), Record(0.3, 0.4, 0.9, 11, 50)};
  RequestRecord failed;
  failed.error = "stream: RESOURCE_EXHAUSTED: queue full";
  run.result.records.push_back(failed);
  LoadSpec spec;
  spec.concurrency = concurrency;
  spec.num_requests = 5;
  auto slo = ParseGoodput("ttft=0.35,tpot=0.15");
  run.summary = SummarizeRun(spec, run.result, *slo);
  return run;
}

TEST(RunSummaryTest, CountsThroughputAndGoodput) {
  const RunSummary s = MakeRun(4).summary;
  EXPECT_EQ(s.launched, 5);
  EXPECT_EQ(s.completed, 4);
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.input_tokens, 140);
  EXPECT_EQ(s.output_tokens, 44);
  EXPECT_DOUBLE_EQ(s.request_throughput, 2.0);  // 4 / 2 s
  EXPECT_DOUBLE_EQ(s.output_throughput, 22.0);
  EXPECT_DOUBLE_EQ(s.total_throughput, 92.0);
  EXPECT_NEAR(s.ttft.mean, 0.25, 1e-12);
  EXPECT_NEAR(s.ttft.p50, 0.25, 1e-12);  // rank 1.5 of {0.1,0.2,0.3,0.4}
  EXPECT_NEAR(s.ttft.p90, 0.37, 1e-12);  // rank 2.7
  // TPOTs: 0.1, 0.05, 0.2, 0.05 -> sorted 0.05,0.05,0.1,0.2.
  EXPECT_NEAR(s.tpot.p50, 0.075, 1e-12);
  EXPECT_NEAR(s.tpot.p99, 0.197, 1e-12);  // rank 2.97: 0.1 + 0.97 * 0.1
  EXPECT_EQ(s.itl.count, 40);
  // Meets ttft <= 0.35 and tpot <= 0.15: requests 1 and 2 only.
  EXPECT_DOUBLE_EQ(s.goodput, 1.0);
  EXPECT_DOUBLE_EQ(s.goodput_fraction, 0.4);  // of 5 launched
  EXPECT_NEAR(s.server_ttft.mean, 0.249, 1e-12);
  EXPECT_EQ(s.errors.at("stream: RESOURCE_EXHAUSTED: queue full"), 1);
}

TEST(RunSummaryTest, SteadyDecodeCountsOnlyTokensWhileEveryStreamDecodes) {
  // Stream A: first token at 1.0, then one every 0.25 s up to 4.0 (13 tokens).
  // Stream B: sent at 0.5, first token at 2.0, one every 0.5 s up to 5.0.
  // Both decode in (2.0, 4.0]: A brings 8 tokens, B 4: 12 over 2 s.
  RequestRecord a = Record(0.0, 1.0, 4.0, 13, 10);
  RequestRecord b = Record(0.5, 1.5, 4.5, 7, 10);
  auto [rate, window] = SteadyDecode({a, b});
  EXPECT_DOUBLE_EQ(window, 2.0);
  EXPECT_DOUBLE_EQ(rate, 6.0);
  // A failed stream does not count; streams that never overlap give NaN.
  RequestRecord failed;
  failed.error = "x";
  EXPECT_DOUBLE_EQ(SteadyDecode({a, b, failed}).first, 6.0);
  RequestRecord late = Record(4.0, 0.5, 1.5, 3, 10);
  EXPECT_TRUE(std::isnan(SteadyDecode({a, late}).first));
  EXPECT_EQ(SteadyDecode({a, late}).second, 0);
  EXPECT_DOUBLE_EQ(MakeRun(4).summary.steady_decode_throughput,
                   SteadyDecode(MakeRun(4).result.records).first);
}

TEST(RunReportTest, JsonKeysNameTheFigures) {
  const nlohmann::json j = BenchJson({MakeRun(4)}, BenchConfig{"127.0.0.1:1", "random", 2, 0});
  for (const char* m : {"ttft", "tpot", "itl", "e2e"}) {
    ASSERT_TRUE(j.contains(m)) << m;
    for (const char* q : {"mean", "p50", "p90", "p99"}) EXPECT_TRUE(j[m][q].is_number()) << m << "." << q;
  }
  EXPECT_NEAR(j["ttft"]["p90"].get<double>(), 0.37, 1e-12);
  EXPECT_DOUBLE_EQ(j["throughput"]["requests_per_s"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(j["throughput"]["output_tokens_per_s"].get<double>(), 22.0);
  EXPECT_TRUE(j["throughput"].contains("steady_decode_tokens_per_s"));
  EXPECT_EQ(j["completed"], 4);
  EXPECT_EQ(j["failed"], 1);
  EXPECT_EQ(j["label"], "concurrency=4");
  EXPECT_EQ(j["config"]["concurrency"], 4);
  EXPECT_TRUE(j["config"]["request_rate"].is_null());
  EXPECT_DOUBLE_EQ(j["goodput"]["requests_per_s"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["goodput"]["slo"]["ttft"].get<double>(), 0.35);
  EXPECT_TRUE(j["server"]["ttft"]["p50"].is_number());
  ASSERT_EQ(j["per_request"].size(), 5u);
  EXPECT_FALSE(j["per_request"][4]["ok"].get<bool>());
  EXPECT_TRUE(j["per_request"][4]["ttft"].is_null());  // NaN is not JSON
  EXPECT_EQ(j["per_request"][4]["error"], "stream: RESOURCE_EXHAUSTED: queue full");
}

TEST(RunReportTest, SweepJsonCsvAndTables) {
  const std::vector<RunReport> runs = {MakeRun(1), MakeRun(2), MakeRun(4)};
  const nlohmann::json j = BenchJson(runs, BenchConfig{});
  EXPECT_EQ(j["sweep"], "concurrency");
  EXPECT_EQ(j["values"], nlohmann::json({1, 2, 4}));
  ASSERT_EQ(j["runs"].size(), 3u);
  EXPECT_EQ(j["runs"][2]["label"], "concurrency=4");

  const std::string csv = BenchCsv(runs);
  std::istringstream in(csv);
  std::string header, line;
  std::getline(in, header);
  EXPECT_EQ(header.rfind("label,mode,concurrency,request_rate,", 0), 0u);
  EXPECT_NE(header.find(",ttft_p99,"), std::string::npos);
  EXPECT_NE(header.find(",throughput_output_tokens_per_s,"), std::string::npos);
  const auto columns = [](const std::string& l) { return std::count(l.begin(), l.end(), ',') + 1; };
  int rows = 0;
  while (std::getline(in, line)) {
    ++rows;
    EXPECT_EQ(columns(line), columns(header)) << line;
  }
  EXPECT_EQ(rows, 3);

  const std::string table = RunTable(runs[0].summary);
  EXPECT_NE(table.find("4 completed, 1 failed (5 launched)"), std::string::npos) << table;
  EXPECT_NE(table.find("server TTFT"), std::string::npos);
  EXPECT_NE(table.find("error x1: stream: RESOURCE_EXHAUSTED: queue full"), std::string::npos);
  const std::string sweep = SweepTable(runs);
  EXPECT_NE(sweep.find("concurrency=2"), std::string::npos);
}

TEST(RunReportTest, RateLabels) {
  LoadSpec s;
  s.mode = LoadSpec::Mode::kRate;
  s.rate = 2.5;
  EXPECT_EQ(s.Label(), "rate=2.5/s");
  s.rate = INFINITY;
  EXPECT_EQ(s.Label(), "rate=inf");
}

TEST(ProgressBarTest, Frames) {
  EXPECT_EQ(ProgressBar::Render("concurrency=4", 10, 0, 5, 0, 4, 120, 2.0, 10),
            "concurrency=4 [#####.....] 5/10  in flight 4  2.5 req/s  60 tok/s  0:02.0");
  EXPECT_EQ(ProgressBar::Render("rate=inf", 0, 10, 3, 1, 0, 0, 65.0, 4),
            "rate=inf [####] 4 (1 failed)  in flight 0  0.0 req/s  0 tok/s  1:05.0");
}

}  // namespace
}  // namespace dms::client
