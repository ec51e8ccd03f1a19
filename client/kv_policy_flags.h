// --kv-policy / --compression-ratio / --protect-tokens, shared by the
// commands that send requests (generate, chat, bench, eval needle), and their
// translation into request fields (docs/kv-policies.md).
#pragma once

#include <optional>
#include <string>

#include "dms/v1/inference.pb.h"
#include "common/cli_fwd.h"
#include "common/status.h"

namespace dms::client {

struct KvPolicyFlags {
  std::string policy;                       // "": the server's --kv-policy
  std::optional<double> compression_ratio;  // unset: the server's --compression-ratio
  std::optional<uint32_t> protect_tokens;   // Generate only; unset: 64
};

// `with_protect`: also --protect-tokens (commands that send Generate).
void AddKvPolicyFlags(CLI::App* cmd, KvPolicyFlags* flags, bool with_protect);

// INVALID_ARGUMENT naming the flag for a ratio outside [0, 1) (the server
// checks the policy name and the rest).
Status ValidateKvPolicyFlags(const KvPolicyFlags& flags);

// Copies the set flags into a request; unset ones stay unset.
void ApplyKvPolicy(const KvPolicyFlags& flags, dms::v1::GenerateRequest* request);
void ApplyKvPolicy(const KvPolicyFlags& flags, dms::v1::ChatRequest* request);

}  // namespace dms::client
