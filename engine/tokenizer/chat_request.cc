#include "engine/tokenizer/chat_request.h"

#include <nlohmann/json.hpp>

namespace dms {
namespace {

using nlohmann::json;

// Jinja truthiness of an optional field: absent, null, false, "" and empty
// containers render nothing.
bool Truthy(const json& j) {
  if (j.is_null()) return false;
  if (j.is_boolean()) return j.get<bool>();
  if (j.is_string() || j.is_array() || j.is_object()) return !j.empty() && j != "";
  return true;
}

Status ReadBool(const json& request, const char* key, bool* out) {
  if (!request.contains(key)) return OkStatus();
  const json& v = request[key];
  if (!v.is_boolean()) return InvalidArgumentError(std::string(key) + ": expected a boolean");
  *out = v.get<bool>();
  return OkStatus();
}

StatusOr<ChatMessage> ReadMessage(const json& m, size_t index) {
  std::string field = "messages[" + std::to_string(index) + "]";
  if (!m.is_object()) return InvalidArgumentError(field + ": expected an object");
  if (!m.contains("role") || !m["role"].is_string()) {
    return InvalidArgumentError(field + ".role: expected a string");
  }
  if (m.contains("tool_calls") && Truthy(m["tool_calls"])) {
    return InvalidArgumentError(field + ".tool_calls: tool calls are not supported");
  }
  if (!m.contains("content") || !m["content"].is_string()) {
    return InvalidArgumentError(field + ".content: expected a string");
  }
  ChatMessage message;
  message.role = m["role"].get<std::string>();
  message.content = m["content"].get<std::string>();
  if (m.contains("reasoning_content") && !m["reasoning_content"].is_null()) {
    if (!m["reasoning_content"].is_string()) {
      return InvalidArgumentError(field + ".reasoning_content: expected a string or null");
    }
    message.reasoning_content = m["reasoning_content"].get<std::string>();
  }
  return message;
}

}  // namespace

StatusOr<ChatRequest> ParseChatRequest(const json& request) {
  if (!request.is_object()) return InvalidArgumentError("request: expected a JSON object");
  if (request.contains("tools") && Truthy(request["tools"])) {
    return InvalidArgumentError("tools: tool definitions are not supported");
  }
  if (!request.contains("messages") || !request["messages"].is_array() ||
      request["messages"].empty()) {
    return InvalidArgumentError("messages: expected a non-empty array");
  }
  ChatRequest out;
  const json& messages = request["messages"];
  for (size_t i = 0; i < messages.size(); ++i) {
    DMS_ASSIGN_OR_RETURN(ChatMessage m, ReadMessage(messages[i], i));
    out.messages.push_back(std::move(m));
  }
  DMS_RETURN_IF_ERROR(ReadBool(request, "enable_thinking", &out.options.enable_thinking));
  DMS_RETURN_IF_ERROR(ReadBool(request, "add_generation_prompt", &out.options.add_generation_prompt));
  return out;
}

}  // namespace dms
