#include "client/kv_policy_flags.h"

#include <CLI/CLI.hpp>

#include "client/client_util.h"

namespace dms::client {

void AddKvPolicyFlags(CLI::App* cmd, KvPolicyFlags* f, bool with_protect) {
  cmd->add_option("--kv-policy", f->policy,
                  "KV cache policy: auto, dense, knorm, snapkv, streaming, expected-attention "
                  "(default: the server's)");
  cmd->add_option("--compression-ratio", f->compression_ratio,
                  "Share of each head's prompt entries a training-free policy removes, in [0, 1)");
  if (with_protect) {
    cmd->add_option("--protect-tokens", f->protect_tokens, "Last prompt tokens never pruned (default 64)");
  }
}

Status ValidateKvPolicyFlags(const KvPolicyFlags& f) {
  if (f.compression_ratio && !(*f.compression_ratio >= 0 && *f.compression_ratio < 1)) {
    return InvalidArgumentError(Format("--compression-ratio: %g is outside [0, 1)", *f.compression_ratio));
  }
  return OkStatus();
}

namespace {
template <typename Request>
void ApplyCommon(const KvPolicyFlags& f, Request* r) {
  if (!f.policy.empty()) r->set_kv_policy(f.policy);
  if (f.compression_ratio) r->set_compression_ratio(*f.compression_ratio);
}
}  // namespace

void ApplyKvPolicy(const KvPolicyFlags& f, dms::v1::GenerateRequest* r) {
  ApplyCommon(f, r);
  if (f.protect_tokens) r->set_protect_tokens(*f.protect_tokens);
}

void ApplyKvPolicy(const KvPolicyFlags& f, dms::v1::ChatRequest* r) { ApplyCommon(f, r); }

}  // namespace dms::client
