// What a client asks the engine for, and what the engine hands back.
//
// The engine thread calls a request's RequestSink; sinks must be quick and
// must not block (they hand data to another thread, e.g. a gRPC reactor).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/core/sampling_params.h"
#include "engine/policies/kv_policy.h"
#include "common/status.h"

namespace dms {

using Clock = std::chrono::steady_clock;

// An engine-issued name for a submitted request: only its submitter can
// cancel it (a client's request_id names nothing outside its owner).
using RequestHandle = uint64_t;

struct GenerationRequest {
  // Who sent the request (the server sets it from the bearer token, the
  // client certificate or the peer address). Request ids and sessions are
  // scoped to it: two owners may use the same ids without touching each
  // other's requests or caches. "" is one owner like any other.
  std::string owner;
  std::string request_id;              // echoed back; unique per owner in flight
  std::vector<int32_t> prompt_tokens;  // non-empty
  SamplingParams sampling;
  uint32_t max_tokens = 256;                 // >= 1
  std::vector<int32_t> stop_token_ids;       // extra ids that end generation
  bool ignore_eos = false;                   // do not stop on the model's EOS ids
  std::vector<std::string> stop_strings;     // end generation; not included in the text
  bool detokenize = true;                    // produce text (needs a tokenizer)
  int priority = 0;                          // lower runs first (as vLLM); FIFO within
  std::optional<Clock::time_point> deadline; // finish with DEADLINE_EXCEEDED after it
  // Keep the compressed cache after this turn under this id; a later request
  // of the same owner with the same id whose prompt starts with this turn's
  // tokens prefills only what is new. Empty: no session.
  std::string session_id;
  // KV policy (docs/kv-policies.md). A training-free one prunes the prompt's
  // cache right after its prefill to max(1, floor(n * (1 - compression_ratio)))
  // entries per layer and KV head, never touching the last protect_tokens
  // prompt tokens. kAuto: the server's native cache (DMS or dense).
  KvPolicyKind kv_policy = KvPolicyKind::kAuto;
  double compression_ratio = 0.5;
  int protect_tokens = 64;
};

enum class FinishReason { kStop, kLength, kStopString, kCancelled, kError };
const char* FinishReasonName(FinishReason r);  // "stop", "length", "stop_string", ...

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
  std::vector<std::pair<int32_t, float>> top;  // top-n alternatives
};

// One streamed increment: tokens produced by one engine step (usually one).
struct TokenDelta {
  std::vector<int32_t> token_ids;
  std::string text;  // UTF-8 complete; may be empty while a character or stop string is pending
  std::vector<TokenLogprob> logprobs;  // per token, when requested
};

struct RequestTiming {
  double queue_ms = 0;            // arrival -> first scheduled
  double ttft_ms = 0;             // arrival -> first token
  double decode_tokens_per_s = 0; // (completion - 1) / (last token - first token)
  double e2e_ms = 0;              // arrival -> finish
};

struct KvUsage {
  int logical_tokens = 0;
  int64_t retained_tokens = 0;  // summed over layers and KV heads
  double compression_ratio = 1.0;
};

struct RequestFinish {
  FinishReason reason = FinishReason::kStop;
  Status error;               // set when reason == kError or a deadline passed
  std::string stop_matched;   // the stop string or "" (reason kStopString)
  int prompt_tokens = 0;
  int cached_prompt_tokens = 0;  // prompt tokens reused from the session's cache
  int completion_tokens = 0;
  int preemptions = 0;
  KvUsage kv;
  RequestTiming timing;
};

class RequestSink {
 public:
  virtual ~RequestSink() = default;
  virtual void OnDelta(const TokenDelta& delta) = 0;
  // Called exactly once, last. The sink may be destroyed after it returns.
  virtual void OnFinish(const RequestFinish& finish) = 0;
};

}  // namespace dms
