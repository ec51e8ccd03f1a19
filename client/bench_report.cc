#include "client/bench_report.h"

#include "client/client_util.h"
#include "client/result_json.h"

namespace dms::client {
namespace {

const char* ModeName(const LoadSpec& spec) {
  return spec.mode == LoadSpec::Mode::kConcurrency ? "concurrency" : "request_rate";
}

std::string Ms(double seconds) { return std::isnan(seconds) ? "-" : Format("%.2f", seconds * 1e3); }
std::string Num(double v, const char* fmt = "%.2f") { return std::isfinite(v) ? Format(fmt, v) : "-"; }

// CSV numbers: empty for NaN, full precision otherwise.
std::string CsvNum(double v) { return std::isfinite(v) ? Format("%.6g", v) : (std::isinf(v) ? "inf" : ""); }

std::string CsvField(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

nlohmann::json RequestJson(const RequestRecord& r) {
  nlohmann::json j = {{"ok", r.ok},
                      {"send_s", r.send_s},
                      {"ttft", NumberOrNull(r.ttft_s)},
                      {"tpot", NumberOrNull(r.Tpot())},
                      {"e2e", NumberOrNull(r.e2e_s)},
                      {"prompt_tokens", r.prompt_tokens},
                      {"output_tokens", r.output_tokens},
                      {"finish_reason", r.finish_reason},
                      {"server_queue", NumberOrNull(r.server_queue_ms / 1e3)},
                      {"server_ttft", NumberOrNull(r.server_ttft_ms / 1e3)},
                      {"server_e2e", NumberOrNull(r.server_e2e_ms / 1e3)},
                      {"compression_ratio", NumberOrNull(r.compression_ratio)}};
  if (!r.ok) j["error"] = r.error;
  return j;
}

}  // namespace

nlohmann::json SummaryJson(const Summary& s) {
  return {{"mean", NumberOrNull(s.mean)}, {"p50", NumberOrNull(s.p50)}, {"p90", NumberOrNull(s.p90)},
          {"p99", NumberOrNull(s.p99)},   {"min", NumberOrNull(s.min)}, {"max", NumberOrNull(s.max)},
          {"std", NumberOrNull(s.std)},   {"count", s.count}};
}

nlohmann::json RunJson(const RunReport& run, const BenchConfig& config) {
  const RunSummary& s = run.summary;
  nlohmann::json j;
  j["label"] = s.spec.Label();
  j["config"] = {{"target", config.target},
                 {"mode", ModeName(s.spec)},
                 {"concurrency", s.spec.mode == LoadSpec::Mode::kConcurrency ? nlohmann::json(s.spec.concurrency) : nlohmann::json(nullptr)},
                 {"request_rate", s.spec.mode == LoadSpec::Mode::kRate ? NumberOrNull(s.spec.rate) : nlohmann::json(nullptr)},
                 {"request_rate_infinite", s.spec.mode == LoadSpec::Mode::kRate && std::isinf(s.spec.rate)},
                 {"burstiness", s.spec.burstiness},
                 {"max_concurrency", s.spec.max_concurrency},
                 {"num_requests", s.spec.num_requests},
                 {"duration_limit_s", s.spec.duration_s},
                 {"warmup_requests", config.warmup_requests},
                 {"dataset", config.dataset},
                 {"sampling", config.sampling},
                 {"seed", config.seed}};
  j["units"] = {{"latency", "s"}, {"throughput", "per s"}};
  j["launched"] = s.launched;
  j["completed"] = s.completed;
  j["failed"] = s.failed;
  j["interrupted"] = s.interrupted;
  j["duration_s"] = s.duration_s;
  j["input_tokens"] = s.input_tokens;
  j["output_tokens"] = s.output_tokens;
  j["ttft"] = SummaryJson(s.ttft);
  j["tpot"] = SummaryJson(s.tpot);
  j["itl"] = SummaryJson(s.itl);
  j["e2e"] = SummaryJson(s.e2e);
  j["throughput"] = {{"requests_per_s", s.request_throughput},
                     {"input_tokens_per_s", s.input_throughput},
                     {"output_tokens_per_s", s.output_throughput},
                     {"total_tokens_per_s", s.total_throughput},
                     {"steady_decode_tokens_per_s", NumberOrNull(s.steady_decode_throughput)},
                     {"steady_window_s", s.steady_window_s}};
  if (s.slo.any()) {
    nlohmann::json slo = nlohmann::json::object();
    if (!std::isnan(s.slo.ttft_s)) slo["ttft"] = s.slo.ttft_s;
    if (!std::isnan(s.slo.tpot_s)) slo["tpot"] = s.slo.tpot_s;
    if (!std::isnan(s.slo.e2e_s)) slo["e2e"] = s.slo.e2e_s;
    j["goodput"] = {{"slo", slo},
                    {"requests_per_s", NumberOrNull(s.goodput)},
                    {"fraction", NumberOrNull(s.goodput_fraction)}};
  } else {
    j["goodput"] = nullptr;
  }
  j["server"] = {{"ttft", SummaryJson(s.server_ttft)},
                 {"queue", SummaryJson(s.server_queue)},
                 {"e2e", SummaryJson(s.server_e2e)},
                 {"decode_tokens_per_s", SummaryJson(s.server_decode_tokens_per_s)},
                 {"compression_ratio", SummaryJson(s.compression_ratio)},
                 {"preemptions", s.preemptions}};
  j["errors"] = s.errors;
  nlohmann::json per = nlohmann::json::array();
  for (const RequestRecord& r : run.result.records) per.push_back(RequestJson(r));
  j["per_request"] = per;
  return j;
}

nlohmann::json BenchJson(const std::vector<RunReport>& runs, const BenchConfig& config) {
  if (runs.size() == 1) return RunJson(runs[0], config);
  nlohmann::json j;
  j["sweep"] = runs.empty() ? "concurrency" : ModeName(runs[0].summary.spec);
  nlohmann::json values = nlohmann::json::array(), all = nlohmann::json::array();
  for (const RunReport& r : runs) {
    values.push_back(NumberOrNull(r.summary.spec.Value()));
    all.push_back(RunJson(r, config));
  }
  j["values"] = values;
  j["runs"] = all;
  return j;
}

std::string BenchCsv(const std::vector<RunReport>& runs) {
  std::string out =
      "label,mode,concurrency,request_rate,burstiness,launched,completed,failed,duration_s,input_tokens,"
      "output_tokens";
  for (const char* m : {"ttft", "tpot", "itl", "e2e"}) {
    for (const char* q : {"mean", "p50", "p90", "p99"}) out += Format(",%s_%s", m, q);
  }
  out += ",throughput_requests_per_s,throughput_output_tokens_per_s,throughput_total_tokens_per_s,"
         "goodput_requests_per_s,goodput_fraction,server_ttft_p50,server_queue_p50,server_e2e_p50,"
         "server_decode_tokens_per_s_p50,compression_ratio_mean\n";
  for (const RunReport& run : runs) {
    const RunSummary& s = run.summary;
    const bool conc = s.spec.mode == LoadSpec::Mode::kConcurrency;
    out += CsvField(s.spec.Label()) + "," + ModeName(s.spec) + "," + (conc ? std::to_string(s.spec.concurrency) : "") +
           "," + (conc ? "" : CsvNum(s.spec.rate)) + "," + CsvNum(s.spec.burstiness) + "," +
           std::to_string(s.launched) + "," + std::to_string(s.completed) + "," + std::to_string(s.failed) + "," +
           CsvNum(s.duration_s) + "," + std::to_string(s.input_tokens) + "," + std::to_string(s.output_tokens);
    for (const Summary* m : {&s.ttft, &s.tpot, &s.itl, &s.e2e}) {
      out += "," + CsvNum(m->mean) + "," + CsvNum(m->p50) + "," + CsvNum(m->p90) + "," + CsvNum(m->p99);
    }
    out += "," + CsvNum(s.request_throughput) + "," + CsvNum(s.output_throughput) + "," +
           CsvNum(s.total_throughput) + "," + CsvNum(s.goodput) + "," + CsvNum(s.goodput_fraction) + "," +
           CsvNum(s.server_ttft.p50) + "," + CsvNum(s.server_queue.p50) + "," + CsvNum(s.server_e2e.p50) + "," +
           CsvNum(s.server_decode_tokens_per_s.p50) + "," + CsvNum(s.compression_ratio.mean) + "\n";
  }
  return out;
}

std::string RunTable(const RunSummary& s) {
  std::string out = Format("==================== dms bench: %s ====================\n", s.spec.Label().c_str());
  out += Format("Requests           %lld completed, %lld failed (%lld launched)%s\n",
                static_cast<long long>(s.completed), static_cast<long long>(s.failed),
                static_cast<long long>(s.launched), s.interrupted ? ", interrupted" : "");
  out += Format("Duration           %.2f s\n", s.duration_s);
  out += Format("Tokens             %lld in, %lld out\n", static_cast<long long>(s.input_tokens),
                static_cast<long long>(s.output_tokens));
  out += Format("Throughput         %.2f req/s, %.1f output tok/s, %.1f total tok/s\n", s.request_throughput,
                s.output_throughput, s.total_throughput);
  if (!std::isnan(s.steady_decode_throughput)) {
    out += Format("Steady decode      %.1f tok/s (all streams decoding, %.2f s window)\n",
                  s.steady_decode_throughput, s.steady_window_s);
  }
  if (s.slo.any()) {
    out += Format("Goodput            %s req/s (%s%% of requests meet %s)\n", Num(s.goodput).c_str(),
                  Num(s.goodput_fraction * 100, "%.1f").c_str(), s.slo.Describe().c_str());
  }
  out += "---------------------------------------------------------------------------\n";
  out += Format("%-22s %10s %10s %10s %10s %10s\n", "latency (ms)", "mean", "p50", "p90", "p99", "max");
  auto row = [&out](const char* name, const Summary& m) {
    out += Format("%-22s %10s %10s %10s %10s %10s\n", name, Ms(m.mean).c_str(), Ms(m.p50).c_str(),
                  Ms(m.p90).c_str(), Ms(m.p99).c_str(), Ms(m.max).c_str());
  };
  row("TTFT", s.ttft);
  row("  server TTFT", s.server_ttft);
  row("  server queue", s.server_queue);
  row("TPOT", s.tpot);
  row("ITL", s.itl);
  row("E2E", s.e2e);
  row("  server E2E", s.server_e2e);
  out += Format("%-22s %10s %10s %10s %10s %10s\n", "server decode tok/s", Num(s.server_decode_tokens_per_s.mean, "%.1f").c_str(),
                Num(s.server_decode_tokens_per_s.p50, "%.1f").c_str(), Num(s.server_decode_tokens_per_s.p90, "%.1f").c_str(),
                Num(s.server_decode_tokens_per_s.p99, "%.1f").c_str(), Num(s.server_decode_tokens_per_s.max, "%.1f").c_str());
  out += Format("%-22s %10s %10s %10s %10s %10s\n", "KV compression (x)", Num(s.compression_ratio.mean).c_str(),
                Num(s.compression_ratio.p50).c_str(), Num(s.compression_ratio.p90).c_str(),
                Num(s.compression_ratio.p99).c_str(), Num(s.compression_ratio.max).c_str());
  if (s.preemptions > 0) out += Format("Preemptions        %lld\n", static_cast<long long>(s.preemptions));
  for (const auto& [message, count] : s.errors) {
    out += Format("error x%lld: %s\n", static_cast<long long>(count), message.c_str());
  }
  return out;
}

std::string SweepTable(const std::vector<RunReport>& runs) {
  std::string out = Format("%-18s %6s %8s %10s %9s %9s %9s %9s %9s %9s %9s\n", "load", "failed", "req/s",
                           "out tok/s", "TTFT p50", "TTFT p99", "TPOT p50", "TPOT p99", "E2E p50", "E2E p99",
                           "goodput");
  for (const RunReport& r : runs) {
    const RunSummary& s = r.summary;
    out += Format("%-18s %6lld %8.2f %10.1f %9s %9s %9s %9s %9s %9s %9s\n", s.spec.Label().c_str(),
                  static_cast<long long>(s.failed), s.request_throughput, s.output_throughput, Ms(s.ttft.p50).c_str(),
                  Ms(s.ttft.p99).c_str(), Ms(s.tpot.p50).c_str(), Ms(s.tpot.p99).c_str(), Ms(s.e2e.p50).c_str(),
                  Ms(s.e2e.p99).c_str(), Num(s.goodput).c_str());
  }
  return out + "(latencies in ms; goodput in req/s meeting the --goodput SLO)\n";
}

}  // namespace dms::client
