// Token counting through the server's Tokenize RPC, so prompt lengths are
// measured with exactly the tokenizer and chat template the model serves.
#pragma once

#include "client/connection.h"
#include "client/haystack.h"

namespace dms::client {

// prompt(): user messages rendered with the chat template
// (enable_thinking as given); text(): plain text.
TokenCounters ServerTokenCounters(const Connection& connection, bool enable_thinking);

// GetModelInfo with a deadline; errors are one line.
StatusOr<dms::v1::ModelInfo> FetchModelInfo(const Connection& connection);

}  // namespace dms::client
