#include "client/needle_eval.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "client/client_util.h"
#include "client/haystack.h"
#include "client/result_json.h"
#include "client/server_tokenizer.h"
#include "client/stream_call.h"

namespace dms::client {
namespace {

double Mean(const std::vector<double>& v) {
  double sum = 0;
  int n = 0;
  for (double x : v) {
    if (std::isfinite(x)) {
      sum += x;
      ++n;
    }
  }
  return n > 0 ? sum / n : NAN;
}

std::string Percent(double fraction) { return Format("%g%%", fraction * 100); }

// Runs one prepared case (prompt built) and fills in its outcome.
void RunCase(const Connection& connection, const NeedleEvalOptions& o, const std::vector<std::string>& user_messages,
             NeedleCase* c, bool* interrupted) {
  const bool think = c->mode == "think";
  dms::v1::ChatRequest request;
  AddUserMessages(user_messages, &request);
  request.set_enable_thinking(think);
  request.set_max_tokens(think ? o.max_tokens_think : o.max_tokens_no_think);
  request.mutable_sampling()->set_temperature(static_cast<float>(o.temperature));
  request.mutable_sampling()->set_seed(o.seed);
  ApplyKvPolicy(o.kv, &request);
  const StreamOutcome out = RunChatStream(connection, request, o.timeout_s, nullptr);
  if (out.interrupted) *interrupted = true;
  const RequestRecord& r = out.record;
  c->prompt_tokens = r.prompt_tokens > 0 ? r.prompt_tokens : c->prompt_tokens;
  c->output_tokens = r.output_tokens;
  c->finish_reason = r.finish_reason;
  if (!r.ok) {
    c->error = r.error;
    return;
  }
  c->ran = true;
  c->answer = AnswerPart(r.text);
  c->correct = c->answer.find(kNeedleAnswer) != std::string::npos;
  c->mentioned_in_reasoning = !c->correct && r.text.find(kNeedleAnswer) != std::string::npos;
  c->ttft_s = r.ttft_s;
  c->e2e_s = r.e2e_s;
  c->tokens_per_s = r.e2e_s > 0 ? r.output_tokens / r.e2e_s : NAN;
  const double tpot = r.Tpot();
  c->decode_tokens_per_s = tpot > 0 ? 1.0 / tpot : NAN;
  c->server_decode_tokens_per_s = r.server_decode_tokens_per_s;
  c->compression_ratio = r.compression_ratio;
}

}  // namespace

Status ValidateNeedleOptions(const NeedleEvalOptions& o) {
  if (o.lengths.empty()) return InvalidArgumentError("--lengths: give at least one length");
  if (o.depths.empty()) return InvalidArgumentError("--depths: give at least one depth");
  for (double d : o.depths) {
    if (!(d >= 0 && d <= 1)) return InvalidArgumentError(Format("--depths: %g%% is outside 0..100", d * 100));
  }
  if (o.modes.empty()) return InvalidArgumentError("--modes: give no-think, think or both");
  for (const std::string& m : o.modes) {
    if (m != "think" && m != "no-think") {
      return InvalidArgumentError("--modes: expected no-think or think, found '" + m + "'");
    }
  }
  if (!(o.temperature >= 0)) return InvalidArgumentError("--temperature: expected >= 0");
  DMS_RETURN_IF_ERROR(ValidateKvPolicyFlags(o.kv));
  if (o.max_tokens_think == 0 || o.max_tokens_no_think == 0) {
    return InvalidArgumentError("--max-tokens-think/--max-tokens-no-think: expected >= 1");
  }
  return OkStatus();
}

std::string AnswerPart(const std::string& text) {
  const size_t end = text.rfind("</think>");
  return end == std::string::npos ? text : text.substr(end + 8);
}

StatusOr<std::vector<NeedleCase>> RunNeedleEval(const Connection& connection, const NeedleEvalOptions& o,
                                                bool* interrupted) {
  DMS_RETURN_IF_ERROR(ValidateNeedleOptions(o));
  DMS_ASSIGN_OR_RETURN(dms::v1::ModelInfo model, FetchModelInfo(connection));
  if (!model.has_tokenizer()) {
    return FailedPreconditionError("eval needle: the served model has no tokenizer (the test needs text prompts)");
  }
  // Both modes see the same user message; no-think's template is the longer.
  const TokenCounters counters = ServerTokenCounters(connection, /*enable_thinking=*/false);
  const uint32_t longest_reply = std::max(
      std::find(o.modes.begin(), o.modes.end(), "think") != o.modes.end() ? o.max_tokens_think : 0u,
      std::find(o.modes.begin(), o.modes.end(), "no-think") != o.modes.end() ? o.max_tokens_no_think : 0u);
  std::vector<NeedleCase> cases;
  *interrupted = false;
  for (int64_t length : o.lengths) {
    for (double depth : o.depths) {
      NeedleCase base;
      base.length = length;
      base.depth = depth;
      std::vector<std::string> messages;
      if (model.max_model_len() > 0 && length + longest_reply > model.max_model_len()) {
        base.skipped = Format("%lld prompt + %u reply tokens exceed the context of %d",
                              static_cast<long long>(length), longest_reply, model.max_model_len());
      } else if (!*interrupted) {
        NeedleSpec spec;
        spec.target_tokens = length;
        spec.depth = depth;
        spec.seed = o.seed;
        spec.layout = o.layout;
        DMS_ASSIGN_OR_RETURN(NeedlePrompt p, BuildNeedlePrompt(spec, counters));
        messages = std::move(p.user_messages);
        base.prompt_tokens = p.prompt_tokens;
        base.depth_actual = p.depth;
      }
      for (const std::string& mode : o.modes) {
        NeedleCase c = base;
        c.mode = mode;
        if (*interrupted && c.skipped.empty()) c.skipped = "interrupted";
        if (c.skipped.empty()) RunCase(connection, o, messages, &c, interrupted);
        if (o.progress) {
          std::fprintf(stderr, "needle %6lld tokens, depth %4s, %-8s: %s\n", static_cast<long long>(length),
                       Percent(depth).c_str(), mode.c_str(),
                       !c.skipped.empty() ? ("skipped: " + c.skipped).c_str()
                       : !c.ran           ? ("failed: " + c.error).c_str()
                       : c.correct        ? "correct"
                                          : "wrong");
        }
        cases.push_back(std::move(c));
      }
    }
  }
  return cases;
}

std::vector<NeedleRow> SummarizeNeedle(const std::vector<NeedleCase>& cases) {
  std::vector<NeedleRow> rows;
  std::map<std::pair<int64_t, std::string>, size_t> index;
  std::map<size_t, std::vector<const NeedleCase*>> members;
  for (const NeedleCase& c : cases) {
    auto key = std::make_pair(c.length, c.mode);
    if (!index.count(key)) {
      index[key] = rows.size();
      rows.emplace_back();
      rows.back().length = c.length;
      rows.back().mode = c.mode;
    }
    members[index[key]].push_back(&c);
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    NeedleRow& row = rows[i];
    std::vector<double> ttft, tps, decode, ratio, prompt;
    for (const NeedleCase* c : members[i]) {
      ++row.cases;
      row.per_depth += (row.per_depth.empty() ? "" : " ") + Percent(c->depth) + ":" +
                       (!c->ran ? "-" : c->correct ? "yes" : "no");
      if (!c->ran) continue;
      ++row.ran;
      row.correct += c->correct;
      ttft.push_back(c->ttft_s);
      tps.push_back(c->tokens_per_s);
      decode.push_back(c->decode_tokens_per_s);
      ratio.push_back(c->compression_ratio);
      prompt.push_back(static_cast<double>(c->prompt_tokens));
    }
    if (row.ran > 0) row.accuracy = static_cast<double>(row.correct) / row.ran;
    row.ttft_s = Mean(ttft);
    row.tokens_per_s = Mean(tps);
    row.decode_tokens_per_s = Mean(decode);
    row.compression_ratio = Mean(ratio);
    row.prompt_tokens = Mean(prompt);
  }
  return rows;
}

std::string NeedleTable(const std::vector<NeedleRow>& rows) {
  auto num = [](double v, const char* fmt) { return std::isfinite(v) ? Format(fmt, v) : std::string("-"); };
  std::string out = Format("%8s %-9s %8s %9s %10s %8s %12s %9s  %s\n", "length", "mode", "prompt", "accuracy",
                           "TTFT (ms)", "tok/s", "decode tok/s", "KV ratio", "correct by depth");
  for (const NeedleRow& r : rows) {
    out += Format("%8lld %-9s %8s %9s %10s %8s %12s %9s  %s\n", static_cast<long long>(r.length), r.mode.c_str(),
                  num(r.prompt_tokens, "%.0f").c_str(),
                  r.ran > 0 ? Format("%d/%d", r.correct, r.ran).c_str() : "-",
                  num(r.ttft_s * 1e3, "%.1f").c_str(), num(r.tokens_per_s, "%.1f").c_str(),
                  num(r.decode_tokens_per_s, "%.1f").c_str(), num(r.compression_ratio, "%.2fx").c_str(),
                  r.per_depth.c_str());
  }
  return out;
}

nlohmann::json NeedleJson(const NeedleEvalOptions& o, const std::vector<NeedleCase>& cases,
                          const std::vector<NeedleRow>& rows) {
  nlohmann::json j;
  j["needle"] = kNeedleFact;
  j["question"] = kNeedleQuestion;
  j["expected"] = kNeedleAnswer;
  j["config"] = {{"lengths", o.lengths},
                 {"depths", o.depths},
                 {"modes", o.modes},
                 {"temperature", o.temperature},
                 {"max_tokens_no_think", o.max_tokens_no_think},
                 {"max_tokens_think", o.max_tokens_think},
                 {"seed", o.seed},
                 {"layout", NeedleLayoutName(o.layout)},
                 {"kv_policy", o.kv.policy.empty() ? "server default" : o.kv.policy},
                 {"compression_ratio", o.kv.compression_ratio ? nlohmann::json(*o.kv.compression_ratio)
                                                              : nlohmann::json(nullptr)}};
  nlohmann::json all = nlohmann::json::array();
  for (const NeedleCase& c : cases) {
    nlohmann::json x = {{"length", c.length},
                        {"depth", c.depth},
                        {"depth_actual", c.depth_actual},
                        {"mode", c.mode},
                        {"prompt_tokens", c.prompt_tokens},
                        {"ran", c.ran},
                        {"correct", c.correct},
                        {"mentioned_in_reasoning", c.mentioned_in_reasoning},
                        {"answer", c.answer},
                        {"output_tokens", c.output_tokens},
                        {"finish_reason", c.finish_reason},
                        {"ttft_s", NumberOrNull(c.ttft_s)},
                        {"e2e_s", NumberOrNull(c.e2e_s)},
                        {"tokens_per_s", NumberOrNull(c.tokens_per_s)},
                        {"decode_tokens_per_s", NumberOrNull(c.decode_tokens_per_s)},
                        {"server_decode_tokens_per_s", NumberOrNull(c.server_decode_tokens_per_s)},
                        {"compression_ratio", NumberOrNull(c.compression_ratio)}};
    if (!c.skipped.empty()) x["skipped"] = c.skipped;
    if (!c.error.empty()) x["error"] = c.error;
    all.push_back(x);
  }
  j["cases"] = all;
  nlohmann::json summary = nlohmann::json::array();
  for (const NeedleRow& r : rows) {
    summary.push_back({{"length", r.length},
                       {"mode", r.mode},
                       {"cases", r.cases},
                       {"ran", r.ran},
                       {"correct", r.correct},
                       {"accuracy", NumberOrNull(r.accuracy)},
                       {"prompt_tokens", NumberOrNull(r.prompt_tokens)},
                       {"ttft_s", NumberOrNull(r.ttft_s)},
                       {"tokens_per_s", NumberOrNull(r.tokens_per_s)},
                       {"decode_tokens_per_s", NumberOrNull(r.decode_tokens_per_s)},
                       {"compression_ratio", NumberOrNull(r.compression_ratio)}});
  }
  j["summary"] = summary;
  return j;
}

}  // namespace dms::client
