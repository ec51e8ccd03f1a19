// Token counting through the server's Tokenize RPC, so prompt lengths are
// measured with exactly the tokenizer and chat template the model serves.
#pragma once

#include <string>
#include <vector>

#include "client/connection.h"
#include "client/haystack.h"

namespace dms::client {

// prompt(): user messages rendered with the chat template
// (enable_thinking as given); text(): plain text.
TokenCounters ServerTokenCounters(const Connection& connection, bool enable_thinking);

// Appends one user message per content, in order (the needle prompt's
// messages, for the Chat and Tokenize RPCs alike).
void AddUserMessages(const std::vector<std::string>& contents, dms::v1::ChatRequest* request);

// GetModelInfo with a deadline; errors are one line.
StatusOr<dms::v1::ModelInfo> FetchModelInfo(const Connection& connection);

}  // namespace dms::client
