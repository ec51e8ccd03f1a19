#include "engine/runtime/kv_policy_runner.h"

#include <algorithm>
#include <string>

namespace dms {

KvPolicySpec MakeKvPolicySpec(const GenerationRequest& request, int prompt_tokens) {
  KvPolicySpec spec;
  spec.kind = request.kv_policy;
  spec.compression_ratio = request.compression_ratio;
  spec.num_tokens = prompt_tokens;
  spec.protect_from = prompt_tokens - std::clamp(request.protect_tokens, 0, prompt_tokens);
  return spec;
}

Status ApplyKvPolicy(Backend& backend, SeqId seq, const KvPolicySpec& spec) {
  const int held = backend.SequenceStats(seq).logical_tokens;
  if (held != spec.num_tokens) {
    return InternalError("KV policy: the sequence holds " + std::to_string(held) +
                         " tokens, the policy was planned for " + std::to_string(spec.num_tokens));
  }
  std::vector<KvHeadScores> scores;
  std::vector<std::vector<int32_t>> kept;
  for (int layer = 0; layer < backend.config().num_layers; ++layer) {
    DMS_RETURN_IF_ERROR(backend.ScoreKvLayer(seq, layer, spec, &scores));
    kept.clear();
    for (const KvHeadScores& head : scores) kept.push_back(SelectKeptSlots(head, spec));
    DMS_RETURN_IF_ERROR(backend.CompactKv(seq, layer, kept));
  }
  return backend.SetKvCapture(seq, KvCaptureSpec{});
}

}  // namespace dms
