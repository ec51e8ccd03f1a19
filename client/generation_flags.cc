#include "client/generation_flags.h"

#include <CLI/CLI.hpp>

#include "client/client_util.h"

namespace dms::client {
namespace {

void FillSampling(const GenerationFlags& f, dms::v1::SamplingParams* s) {
  if (f.temperature_opt && f.temperature_opt->count() > 0) s->set_temperature(static_cast<float>(f.temperature));
  if (f.top_p_opt && f.top_p_opt->count() > 0) s->set_top_p(static_cast<float>(f.top_p));
  if (f.repetition_penalty_opt && f.repetition_penalty_opt->count() > 0) {
    s->set_repetition_penalty(static_cast<float>(f.repetition_penalty));
  }
  if (f.seed_opt && f.seed_opt->count() > 0) s->set_seed(f.seed);
  if (f.top_k_opt && f.top_k_opt->count() > 0) s->set_top_k(f.top_k);
  if (f.min_p_opt && f.min_p_opt->count() > 0) s->set_min_p(static_cast<float>(f.min_p));
  s->set_presence_penalty(static_cast<float>(f.presence_penalty));
  s->set_frequency_penalty(static_cast<float>(f.frequency_penalty));
}

// The fields GenerateRequest and ChatRequest share.
template <typename Request>
Status FillCommon(const GenerationFlags& f, Request* r) {
  r->set_max_tokens(f.max_tokens);
  FillSampling(f, r->mutable_sampling());
  for (const std::string& s : f.stop) r->add_stop(s);
  if (!f.stop_token_ids.empty()) {
    DMS_ASSIGN_OR_RETURN(std::vector<int32_t> ids, ParseIntList(f.stop_token_ids, "--stop-token-ids"));
    for (int32_t id : ids) r->add_stop_token_ids(id);
  }
  r->set_logprobs(f.logprobs);
  r->set_priority(f.priority);
  r->set_ignore_eos(f.ignore_eos);
  DMS_RETURN_IF_ERROR(ValidateKvPolicyFlags(f.kv));
  ApplyKvPolicy(f.kv, r);
  if (f.timeout_s < 0) return InvalidArgumentError("--timeout: expected seconds >= 0");
  return OkStatus();
}

}  // namespace

void AddGenerationFlags(CLI::App* cmd, GenerationFlags* f) {
  cmd->add_option("--max-tokens", f->max_tokens, "Maximum new tokens (0: the server's default, 256)");
  f->temperature_opt =
      cmd->add_option("--temperature", f->temperature,
                      "Sampling temperature, 0 = greedy (default: the model's, else 1)");
  f->top_p_opt = cmd->add_option("--top-p", f->top_p,
                                 "Nucleus sampling mass in (0, 1] (default: the model's, else 1)");
  f->top_k_opt = cmd->add_option("--top-k", f->top_k,
                                 "Keep the k most likely tokens, 0 = off (default: the model's)");
  f->min_p_opt =
      cmd->add_option("--min-p", f->min_p, "Drop tokens below min-p x the top probability");
  f->repetition_penalty_opt = cmd->add_option("--repetition-penalty", f->repetition_penalty, "> 0 (default 1)");
  cmd->add_option("--presence-penalty", f->presence_penalty, "In [-2, 2]");
  cmd->add_option("--frequency-penalty", f->frequency_penalty, "In [-2, 2]");
  f->seed_opt = cmd->add_option("--seed", f->seed, "Sampling seed: same seed, same output (default random)");
  cmd->add_option("--stop", f->stop, "Stop string, not included in the output (repeatable)");
  cmd->add_option("--stop-token-ids", f->stop_token_ids, "Comma-separated token ids that end generation");
  cmd->add_option("--logprobs", f->logprobs, "Top-n logprobs per token (shown with --json)");
  cmd->add_option("--priority", f->priority, "Lower runs first (default 0)");
  cmd->add_flag("--ignore-eos", f->ignore_eos, "Keep generating past the end-of-sequence token");
  cmd->add_option("--timeout", f->timeout_s, "Request deadline in seconds (0 = none)");
  AddKvPolicyFlags(cmd, &f->kv, /*with_protect=*/true);
}

Status FillGenerateRequest(const GenerationFlags& flags, dms::v1::GenerateRequest* request) {
  return FillCommon(flags, request);
}

Status FillChatRequest(const GenerationFlags& flags, dms::v1::ChatRequest* request) {
  return FillCommon(flags, request);
}

}  // namespace dms::client
