#include "client/bench_summary.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "client/client_util.h"

namespace dms::client {

bool GoodputSlo::Met(const RequestRecord& r) const {
  if (!r.ok) return false;
  if (!std::isnan(ttft_s) && !(r.ttft_s <= ttft_s)) return false;
  // One-token replies have no TPOT: nothing to violate.
  if (!std::isnan(tpot_s) && !std::isnan(r.Tpot()) && !(r.Tpot() <= tpot_s)) return false;
  if (!std::isnan(e2e_s) && !(r.e2e_s <= e2e_s)) return false;
  return true;
}

std::string GoodputSlo::Describe() const {
  std::string out;
  auto add = [&out](const char* name, double v) {
    if (std::isnan(v)) return;
    out += (out.empty() ? "" : ", ") + Format("%s<=%gs", name, v);
  };
  add("ttft", ttft_s);
  add("tpot", tpot_s);
  add("e2e", e2e_s);
  return out;
}

StatusOr<GoodputSlo> ParseGoodput(const std::string& text) {
  GoodputSlo slo;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    const size_t eq = item.find('=');
    if (eq == std::string::npos) {
      return InvalidArgumentError("--goodput: expected METRIC=SECONDS items like ttft=0.5,tpot=0.05, found '" + item + "'");
    }
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !(v > 0) || !std::isfinite(v)) {
      return InvalidArgumentError("--goodput: " + key + " must be a positive number of seconds, found '" + value + "'");
    }
    if (key == "ttft") {
      slo.ttft_s = v;
    } else if (key == "tpot") {
      slo.tpot_s = v;
    } else if (key == "e2e") {
      slo.e2e_s = v;
    } else {
      return InvalidArgumentError("--goodput: unknown metric '" + key + "' (expected ttft, tpot or e2e)");
    }
    pos = comma + 1;
  }
  return slo;
}

std::pair<double, double> SteadyDecode(const std::vector<RequestRecord>& records) {
  double start = -INFINITY, end = INFINITY;
  int streams = 0;
  for (const RequestRecord& r : records) {
    if (!r.ok || r.output_tokens < 2) continue;
    ++streams;
    start = std::max(start, r.send_s + r.ttft_s);
    end = std::min(end, r.send_s + r.e2e_s);
  }
  if (streams == 0 || !(end > start)) return {NAN, 0};
  int64_t tokens = 0;
  for (const RequestRecord& r : records) {
    if (!r.ok || r.output_tokens < 2) continue;
    double t = r.send_s + r.ttft_s;
    for (double gap : r.itl_s) {
      t += gap;
      if (t > start && t <= end) ++tokens;
    }
  }
  return {tokens / (end - start), end - start};
}

RunSummary SummarizeRun(const LoadSpec& spec, const RunResult& result, const GoodputSlo& slo) {
  RunSummary s;
  s.spec = spec;
  s.slo = slo;
  s.duration_s = result.duration_s;
  s.interrupted = result.interrupted;
  s.launched = static_cast<int64_t>(result.records.size());
  std::vector<double> ttft, tpot, itl, e2e, sttft, squeue, se2e, sdecode, ratio;
  int64_t good = 0;
  for (const RequestRecord& r : result.records) {
    if (!r.ok) {
      ++s.failed;
      ++s.errors[r.error.empty() ? "unknown error" : r.error];
      continue;
    }
    ++s.completed;
    s.input_tokens += r.prompt_tokens;
    s.output_tokens += r.output_tokens;
    ttft.push_back(r.ttft_s);
    tpot.push_back(r.Tpot());
    e2e.push_back(r.e2e_s);
    itl.insert(itl.end(), r.itl_s.begin(), r.itl_s.end());
    sttft.push_back(r.server_ttft_ms / 1e3);
    squeue.push_back(r.server_queue_ms / 1e3);
    se2e.push_back(r.server_e2e_ms / 1e3);
    sdecode.push_back(r.server_decode_tokens_per_s);
    ratio.push_back(r.compression_ratio);
    s.preemptions += r.preemptions;
    if (slo.any() && slo.Met(r)) ++good;
  }
  s.ttft = Summarize(ttft);
  s.tpot = Summarize(tpot);
  s.itl = Summarize(itl);
  s.e2e = Summarize(e2e);
  s.server_ttft = Summarize(sttft);
  s.server_queue = Summarize(squeue);
  s.server_e2e = Summarize(se2e);
  s.server_decode_tokens_per_s = Summarize(sdecode);
  s.compression_ratio = Summarize(ratio);
  std::tie(s.steady_decode_throughput, s.steady_window_s) = SteadyDecode(result.records);
  if (s.duration_s > 0) {
    s.request_throughput = s.completed / s.duration_s;
    s.input_throughput = s.input_tokens / s.duration_s;
    s.output_throughput = s.output_tokens / s.duration_s;
    s.total_throughput = (s.input_tokens + s.output_tokens) / s.duration_s;
    if (slo.any()) s.goodput = good / s.duration_s;
  }
  if (slo.any() && s.launched > 0) s.goodput_fraction = static_cast<double>(good) / s.launched;
  return s;
}

}  // namespace dms::client
