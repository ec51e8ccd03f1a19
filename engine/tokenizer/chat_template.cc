#include "engine/tokenizer/chat_template.h"

#include "common/text_escape.h"

namespace dms {
namespace {

constexpr std::string_view kThink = "<think>";
constexpr std::string_view kEndThink = "</think>";

// Python's str.lstrip('\n'), rstrip('\n') and strip('\n').
std::string_view LStripNewlines(std::string_view s) {
  size_t i = s.find_first_not_of('\n');
  return i == std::string_view::npos ? std::string_view() : s.substr(i);
}
std::string_view RStripNewlines(std::string_view s) {
  size_t i = s.find_last_not_of('\n');
  return i == std::string_view::npos ? std::string_view() : s.substr(0, i + 1);
}
std::string_view StripNewlines(std::string_view s) { return RStripNewlines(LStripNewlines(s)); }

bool IsToolResponse(std::string_view content) {
  return content.starts_with("<tool_response>") && content.ends_with("</tool_response>");
}

// The template's split of an assistant message into (content, reasoning).
void SplitReasoning(const ChatMessage& m, std::string_view* content, std::string_view* reasoning) {
  *content = m.content;
  *reasoning = std::string_view();
  if (m.reasoning_content.has_value()) {
    *reasoning = *m.reasoning_content;
    return;
  }
  size_t first_end = m.content.find(kEndThink);
  if (first_end == std::string::npos) return;
  // content.split('</think>')[-1].lstrip('\n')
  size_t last_end = m.content.rfind(kEndThink);
  *content = LStripNewlines(std::string_view(m.content).substr(last_end + kEndThink.size()));
  // content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n')
  std::string_view before = RStripNewlines(std::string_view(m.content).substr(0, first_end));
  size_t think = before.rfind(kThink);
  if (think != std::string_view::npos) before = before.substr(think + kThink.size());
  *reasoning = LStripNewlines(before);
}

}  // namespace

StatusOr<std::string> RenderChatTemplate(std::span<const ChatMessage> messages,
                                         const ChatOptions& options) {
  if (messages.empty()) return InvalidArgumentError("messages: expected at least one message");
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& role = messages[i].role;
    if (role == "system" || role == "user" || role == "assistant") continue;
    std::string field = "messages[" + std::to_string(i) + "].role: ";
    if (role == "tool") {
      return InvalidArgumentError(field + "'tool' messages are not supported (no tool calling)");
    }
    return InvalidArgumentError(field + "unknown role '" + EscapeText(role, 64) +
                                "' (expected system, user or assistant)");
  }

  std::string out;
  if (messages[0].role == "system") {
    out.append("<|im_start|>system\n").append(messages[0].content).append("<|im_end|>\n");
  }
  // The last user message that is not a wrapped tool response.
  size_t last_query = messages.size() - 1;
  for (size_t k = messages.size(); k-- > 0;) {
    if (messages[k].role == "user" && !IsToolResponse(messages[k].content)) {
      last_query = k;
      break;
    }
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "user" || (m.role == "system" && i > 0)) {
      out.append("<|im_start|>").append(m.role).append("\n").append(m.content).append("<|im_end|>\n");
      continue;
    }
    if (m.role != "assistant") continue;  // the leading system message
    std::string_view content, reasoning;
    SplitReasoning(m, &content, &reasoning);
    bool last = i + 1 == messages.size();
    out.append("<|im_start|>assistant\n");
    if (i > last_query && (last || !reasoning.empty())) {
      out.append("<think>\n").append(StripNewlines(reasoning)).append("\n</think>\n\n");
      out.append(LStripNewlines(content));
    } else {
      out.append(content);
    }
    out.append("<|im_end|>\n");
  }
  if (options.add_generation_prompt) {
    out.append("<|im_start|>assistant\n");
    if (!options.enable_thinking) out.append("<think>\n\n</think>\n\n");
  }
  return out;
}

Status CheckChatTemplateSupported(std::string_view jinja_source) {
  if (jinja_source.empty()) return OkStatus();
  // Distinctive pieces of Qwen3's template that this renderer implements.
  for (std::string_view marker :
       {"<|im_start|>", "reasoning_content", "last_query_index",
        "enable_thinking is defined and enable_thinking is false", "<think>\\n\\n</think>\\n\\n"}) {
    if (jinja_source.find(marker) == std::string_view::npos) {
      return FailedPreconditionError(
          "tokenizer_config.json: chat_template is not Qwen3's (missing \"" + std::string(marker) +
          "\"); only the Qwen3 ChatML template is supported");
    }
  }
  return OkStatus();
}

}  // namespace dms
