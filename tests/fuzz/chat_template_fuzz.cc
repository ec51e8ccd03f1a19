// Fuzz target: a JSON chat request (the input) through ParseChatRequest and
// RenderChatTemplate, as `dms-engine tokenize --chat` reads it.
//
// Properties: every error is one non-empty line naming the field
// ("messages[2].role: ...", "tools: ..."); an unknown or tool role is refused
// at the first such message; an accepted request keeps each message's role,
// content and reasoning and the two options exactly as the JSON gave them;
// and the rendering equals an independent transcription of the Jinja
// template (tests/fuzz/reference_chat.h). The text is read as dms-engine
// reads a JSON line: beyond kJsonLineLimits (size, nesting) it is refused
// with exactly that limit's line, and only then (CheckJsonLimitsContract).
#include <nlohmann/json.hpp>

#include <string>

#include "engine/tokenizer/chat_request.h"
#include "engine/tokenizer/chat_template.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/reference_chat.h"

namespace dms::fuzz {
namespace {

using nlohmann::json;

bool KnownRole(const std::string& role) { return role == "system" || role == "user" || role == "assistant"; }

bool OptionOr(const json& j, const char* key, bool fallback) {
  return j.contains(key) ? j[key].get<bool>() : fallback;
}

void CheckParsed(const json& j, const ChatRequest& req) {
  const json& msgs = j["messages"];
  FUZZ_CHECK(msgs.is_array() && msgs.size() == req.messages.size(), "message count");
  for (size_t i = 0; i < msgs.size(); ++i) {
    const ChatMessage& m = req.messages[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    FUZZ_CHECK(msgs[i]["role"] == m.role && msgs[i]["content"] == m.content, at + " role or content changed");
    const bool has_reasoning = msgs[i].contains("reasoning_content") && !msgs[i]["reasoning_content"].is_null();
    FUZZ_CHECK(has_reasoning == m.reasoning_content.has_value(), at + " reasoning_content presence");
    if (has_reasoning) FUZZ_CHECK(msgs[i]["reasoning_content"] == *m.reasoning_content, at + " reasoning_content");
  }
  FUZZ_CHECK(OptionOr(j, "enable_thinking", true) == req.options.enable_thinking, "enable_thinking");
  FUZZ_CHECK(OptionOr(j, "add_generation_prompt", true) == req.options.add_generation_prompt,
             "add_generation_prompt");
}

void CheckRendered(const ChatRequest& req) {
  StatusOr<std::string> text = RenderChatTemplate(req.messages, req.options);
  size_t first_bad = req.messages.size();
  for (size_t i = 0; i < req.messages.size() && first_bad == req.messages.size(); ++i) {
    if (!KnownRole(req.messages[i].role)) first_bad = i;
  }
  if (first_bad < req.messages.size()) {
    CheckError(text.status(), "messages[" + std::to_string(first_bad) + "].role: ");
    return;
  }
  FUZZ_CHECK(text.ok(), "refused a valid conversation: " + text.status().message());
  const std::string want =
      ReferenceChat(req.messages, req.options.enable_thinking, req.options.add_generation_prompt);
  FUZZ_CHECK(*text == want, "rendered \"" + Printable(*text) + "\", the template gives \"" + Printable(want) + "\"");
}

}  // namespace
}  // namespace dms::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dms::fuzz;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  dms::StatusOr<nlohmann::json> parsed =
      dms::ParseBoundedJson(text, dms::kJsonLineLimits, "line 1", "JSON");
  if (CheckJsonLimitsContract(text, dms::kJsonLineLimits, parsed.status(), "line 1: JSON")) return 0;
  if (!parsed.ok()) return 0;  // not JSON: the caller reports that, not this code
  const nlohmann::json& j = *parsed;
  dms::StatusOr<dms::ChatRequest> req = dms::ParseChatRequest(j);
  if (!req.ok()) {
    CheckErrorAnyPrefix(req.status(), {"request: ", "messages: ", "messages[", "tools: ", "enable_thinking: ",
                                       "add_generation_prompt: "});
    return 0;
  }
  CheckParsed(j, *req);
  CheckRendered(*req);
  return 0;
}
