// Qwen3's chat template (ChatML with <think> blocks), implemented directly:
// the output equals what transformers' apply_chat_template renders from the
// Jinja template in Qwen3's tokenizer_config.json, for conversations of
// system / user / assistant messages without tools:
//
//   * a leading system message, then each message as
//     "<|im_start|>{role}\n{content}<|im_end|>\n";
//   * an assistant message's reasoning comes from `reasoning_content` or,
//     if absent, from a "<think>...</think>" prefix of its content; it is
//     kept (as "<think>\n{reasoning}\n</think>\n\n") only for assistant
//     messages after the last user query, and always for the final one;
//   * the generation prompt is "<|im_start|>assistant\n", followed by
//     "<think>\n\n</think>\n\n" when enable_thinking is false.
//
// Tools, the tool role and tool_calls are refused with INVALID_ARGUMENT, as
// are unknown roles (the Jinja template would silently drop them).
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace dms {

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
  std::optional<std::string> reasoning_content;  // assistant only; null = absent
};

struct ChatOptions {
  bool enable_thinking = true;
  bool add_generation_prompt = true;
};

// Renders the conversation. Errors (INVALID_ARGUMENT):
//   "messages: expected at least one message"
//   "messages[i].role: 'tool' messages are not supported (no tool calling)"
//   "messages[i].role: unknown role 'x' (expected system, user or assistant)"
StatusOr<std::string> RenderChatTemplate(std::span<const ChatMessage> messages,
                                         const ChatOptions& options);

// OK when `jinja_source` (tokenizer_config.json's chat_template) is Qwen3's
// template or empty (then Qwen3's is assumed); FAILED_PRECONDITION when it is
// some other template, which RenderChatTemplate would not reproduce.
Status CheckChatTemplateSupported(std::string_view jinja_source);

}  // namespace dms
