// Parses a chat request in the OpenAI-style JSON shape used by transformers'
// apply_chat_template: {"messages": [{"role", "content", "reasoning_content"?}],
// "enable_thinking"?: bool, "add_generation_prompt"?: bool}. Other keys are
// ignored; tools / tool_calls are refused.
#pragma once

#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "engine/tokenizer/chat_template.h"
#include "common/status.h"

namespace dms {

struct ChatRequest {
  std::vector<ChatMessage> messages;
  ChatOptions options;  // defaults: enable_thinking true, add_generation_prompt true
};

// Errors (INVALID_ARGUMENT), one line naming the field, e.g.
//   "messages: expected a non-empty array"
//   "messages[2].content: expected a string"
//   "messages[1].tool_calls: tool calls are not supported"
//   "tools: tool definitions are not supported"
//   "enable_thinking: expected a boolean"
StatusOr<ChatRequest> ParseChatRequest(const nlohmann::json& request);

}  // namespace dms
