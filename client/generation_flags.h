// Flags shared by `dms generate` and `dms chat`: sampling, stops, limits,
// and their translation into request messages.
#pragma once

#include <string>
#include <vector>

#include "client/kv_policy_flags.h"
#include "dms/v1/inference.pb.h"
#include "common/cli_fwd.h"
#include "common/status.h"

namespace dms::client {

struct GenerationFlags {
  uint32_t max_tokens = 0;  // 0: the server's default
  double temperature = 1, top_p = 1, repetition_penalty = 1;
  int32_t top_k = 0;
  double min_p = 0, presence_penalty = 0, frequency_penalty = 0;
  uint64_t seed = 0;
  std::vector<std::string> stop;
  std::string stop_token_ids;
  uint32_t logprobs = 0;
  int32_t priority = 0;
  bool ignore_eos = false;
  double timeout_s = 0;  // per-request deadline; 0 = none
  KvPolicyFlags kv;

  // Set by AddGenerationFlags: which optional fields the user gave.
  CLI::Option* temperature_opt = nullptr;
  CLI::Option* top_p_opt = nullptr;
  CLI::Option* repetition_penalty_opt = nullptr;
  CLI::Option* top_k_opt = nullptr;
  CLI::Option* min_p_opt = nullptr;
  CLI::Option* seed_opt = nullptr;
};

void AddGenerationFlags(CLI::App* cmd, GenerationFlags* flags);

// Copies the flags into a request (unset optional fields stay unset so the
// server's defaults apply). INVALID_ARGUMENT for a bad --stop-token-ids.
Status FillGenerateRequest(const GenerationFlags& flags, dms::v1::GenerateRequest* request);
Status FillChatRequest(const GenerationFlags& flags, dms::v1::ChatRequest* request);

}  // namespace dms::client
