#include "client/result_json.h"

#include <cmath>

namespace dms::client {

nlohmann::json NumberOrNull(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json(nullptr);
}

nlohmann::json OutcomeJson(const StreamOutcome& o) {
  const RequestRecord& r = o.record;
  nlohmann::json j;
  j["request_id"] = o.last.request_id();
  j["text"] = r.text;
  j["token_ids"] = o.token_ids;
  j["finish_reason"] = r.finish_reason;
  if (!o.last.stop_matched().empty()) j["stop_matched"] = o.last.stop_matched();
  j["usage"] = {{"prompt_tokens", r.prompt_tokens}, {"completion_tokens", r.server_completion_tokens}};
  j["kv"] = {{"logical_tokens", o.last.kv().logical_tokens()},
             {"retained_tokens", o.last.kv().retained_tokens()},
             {"compression_ratio", NumberOrNull(r.compression_ratio)}};
  j["server"] = {{"queue_ms", NumberOrNull(r.server_queue_ms)},
                 {"ttft_ms", NumberOrNull(r.server_ttft_ms)},
                 {"e2e_ms", NumberOrNull(r.server_e2e_ms)},
                 {"decode_tokens_per_s", NumberOrNull(r.server_decode_tokens_per_s)},
                 {"preemptions", r.preemptions}};
  const double tpot = r.Tpot();
  j["client"] = {{"ttft_s", NumberOrNull(r.ttft_s)},
                 {"e2e_s", NumberOrNull(r.e2e_s)},
                 {"tpot_s", NumberOrNull(tpot)},
                 {"tokens_per_s", NumberOrNull(r.e2e_s > 0 ? r.output_tokens / r.e2e_s : NAN)},
                 {"messages", r.messages}};
  if (!o.logprobs.empty()) {
    nlohmann::json lps = nlohmann::json::array();
    for (const auto& lp : o.logprobs) {
      nlohmann::json top = nlohmann::json::array();
      for (const auto& t : lp.top()) top.push_back({{"id", t.token_id()}, {"logprob", t.logprob()}});
      lps.push_back({{"id", lp.token_id()}, {"logprob", lp.logprob()}, {"top", top}});
    }
    j["logprobs"] = lps;
  }
  return j;
}

}  // namespace dms::client
