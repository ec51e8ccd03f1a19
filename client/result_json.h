// JSON views of single results (generate/chat --json).
#pragma once

#include <nlohmann/json.hpp>

#include "client/stream_call.h"

namespace dms::client {

// {"text", "token_ids", "finish_reason", "usage", "kv", "server": {...},
//  "client": {"ttft_s", "e2e_s", "tpot_s", "tokens_per_s"}, "logprobs"?}
nlohmann::json OutcomeJson(const StreamOutcome& outcome);

// A JSON number, or null for NaN/inf (JSON has no NaN).
nlohmann::json NumberOrNull(double value);

}  // namespace dms::client
