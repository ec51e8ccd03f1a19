// Runs a request's training-free KV policy on a backend (docs/kv-policies.md):
// the backend scores each layer's entries, the shared rule (SelectKeptSlots)
// picks what stays, the backend compacts. Engine thread only.
#pragma once

#include "engine/core/backend.h"
#include "engine/runtime/request.h"

namespace dms {

// The policy of `request` for a prompt of `prompt_tokens` tokens: the
// protected tail starts at prompt_tokens - min(prompt_tokens, protect_tokens).
KvPolicySpec MakeKvPolicySpec(const GenerationRequest& request, int prompt_tokens);

// Prunes every layer of `seq` (which must hold exactly spec.num_tokens
// tokens, captured with KvCaptureFor(spec.kind)) and stops the capture.
Status ApplyKvPolicy(Backend& backend, SeqId seq, const KvPolicySpec& spec);

}  // namespace dms
