// Qwen3 chat template: rendering rules (checked against hand-derived
// expectations from the Jinja template) and exact errors for what is not
// supported. The golden test checks it against transformers.
#include "engine/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/tokenizer/chat_request.h"

namespace dms {
namespace {

using nlohmann::json;

ChatMessage Msg(std::string role, std::string content) {
  return ChatMessage{std::move(role), std::move(content), std::nullopt};
}

std::string Render(const std::vector<ChatMessage>& m, bool thinking = true, bool gen = true) {
  auto r = RenderChatTemplate(m, ChatOptions{thinking, gen});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : "";
}

std::string ErrorOf(const std::vector<ChatMessage>& m) {
  auto r = RenderChatTemplate(m, ChatOptions{});
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

std::string RequestError(const std::string& request_json) {
  auto r = ParseChatRequest(json::parse(request_json));
  EXPECT_FALSE(r.ok()) << request_json;
  if (r.ok()) return "";
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  return r.status().message();
}

TEST(ChatTemplate, GenerationPromptWithAndWithoutThinking) {
  std::vector<ChatMessage> m = {Msg("user", "Hi")};
  EXPECT_EQ(Render(m, true), "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(Render(m, false),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n");
  EXPECT_EQ(Render(m, false, false), "<|im_start|>user\nHi<|im_end|>\n");
}

TEST(ChatTemplate, SystemMessages) {
  EXPECT_EQ(Render({Msg("system", "Be brief."), Msg("user", "Q")}),
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n"
            "<|im_start|>assistant\n");
  // A later system message is rendered in place, as the template does.
  EXPECT_EQ(Render({Msg("user", "A"), Msg("system", "S"), Msg("user", "B")}, true, false),
            "<|im_start|>user\nA<|im_end|>\n<|im_start|>system\nS<|im_end|>\n"
            "<|im_start|>user\nB<|im_end|>\n");
}

TEST(ChatTemplate, ReasoningIsDroppedBeforeTheLastQuery) {
  std::vector<ChatMessage> m = {Msg("user", "Hi"),
                                Msg("assistant", "<think>\nThe user greets.\n</think>\n\nHello!"),
                                Msg("user", "Joke?")};
  EXPECT_EQ(Render(m),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
            "<|im_start|>user\nJoke?<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, FinalAssistantKeepsAnEmptyThinkBlock) {
  std::vector<ChatMessage> m = {Msg("user", "Hi"), Msg("assistant", "Hello!")};
  EXPECT_EQ(Render(m, true, false),
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
            "Hello!<|im_end|>\n");
}

TEST(ChatTemplate, ReasoningAfterTheLastQuery) {
  ChatMessage a1 = Msg("assistant", "Step one.");
  a1.reasoning_content = "\nthink 1\n";
  ChatMessage a2 = Msg("assistant", "\n\nDone.");
  std::vector<ChatMessage> m = {Msg("user", "Go"), a1, Msg("assistant", "no reasoning"), a2};
  EXPECT_EQ(Render(m, true, false),
            "<|im_start|>user\nGo<|im_end|>\n"
            "<|im_start|>assistant\n<think>\nthink 1\n</think>\n\nStep one.<|im_end|>\n"
            "<|im_start|>assistant\nno reasoning<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\nDone.<|im_end|>\n");
}

TEST(ChatTemplate, ThinkSplittingFollowsPythonStringRules) {
  // split('</think>')[-1].lstrip('\n') for content; for reasoning,
  // split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n').
  ChatMessage a = Msg("assistant", "pre<think>\n\nr1\n</think>mid</think>\n\nans");
  EXPECT_EQ(Render({Msg("user", "q"), a}, true, false),
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nr1\n</think>\n\n"
            "ans<|im_end|>\n");
  // An explicit reasoning_content wins; the content is then used as is.
  ChatMessage b = Msg("assistant", "<think>x</think>y");
  b.reasoning_content = "";
  EXPECT_EQ(Render({Msg("user", "q"), b}, true, false),
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
            "<think>x</think>y<|im_end|>\n");
}

TEST(ChatTemplate, WrappedToolResponsesAreNotQueries) {
  // The last user message is a wrapped tool response, so the query is the
  // first one and the assistant after it keeps its reasoning.
  ChatMessage a = Msg("assistant", "ok");
  a.reasoning_content = "why";
  std::vector<ChatMessage> m = {Msg("user", "q"), a, Msg("user", "<tool_response>r</tool_response>")};
  EXPECT_EQ(Render(m, true, false),
            "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n<think>\nwhy\n</think>\n\nok"
            "<|im_end|>\n<|im_start|>user\n<tool_response>r</tool_response><|im_end|>\n");
}

TEST(ChatTemplate, Errors) {
  EXPECT_EQ(ErrorOf({}), "messages: expected at least one message");
  EXPECT_EQ(ErrorOf({Msg("user", "a"), Msg("tool", "b")}),
            "messages[1].role: 'tool' messages are not supported (no tool calling)");
  EXPECT_EQ(ErrorOf({Msg("developer", "a")}),
            "messages[0].role: unknown role 'developer' (expected system, user or assistant)");
}

TEST(ChatRequest, ParsesDefaultsAndFields) {
  auto r = ParseChatRequest(json::parse(
      R"({"messages": [{"role": "user", "content": "x", "name": "ignored"},
                       {"role": "assistant", "content": "y", "reasoning_content": null}],
          "extra": 1})"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->options.enable_thinking);
  EXPECT_TRUE(r->options.add_generation_prompt);
  ASSERT_EQ(r->messages.size(), 2u);
  EXPECT_FALSE(r->messages[1].reasoning_content.has_value());
  auto r2 = ParseChatRequest(json::parse(
      R"({"messages": [{"role": "user", "content": "x"}], "enable_thinking": false,
          "add_generation_prompt": false, "tools": [], "messages_extra": {}})"));
  ASSERT_TRUE(r2.ok());
  EXPECT_FALSE(r2->options.enable_thinking);
  EXPECT_FALSE(r2->options.add_generation_prompt);
}

TEST(ChatRequest, Errors) {
  EXPECT_EQ(RequestError("[]"), "request: expected a JSON object");
  EXPECT_EQ(RequestError("{}"), "messages: expected a non-empty array");
  EXPECT_EQ(RequestError(R"({"messages": []})"), "messages: expected a non-empty array");
  EXPECT_EQ(RequestError(R"({"messages": [1]})"), "messages[0]: expected an object");
  EXPECT_EQ(RequestError(R"({"messages": [{"content": "x"}]})"), "messages[0].role: expected a string");
  EXPECT_EQ(RequestError(R"({"messages": [{"role": "user"}]})"), "messages[0].content: expected a string");
  EXPECT_EQ(RequestError(R"({"messages": [{"role": "user", "content": [{"type": "text"}]}]})"),
            "messages[0].content: expected a string");
  EXPECT_EQ(RequestError(R"({"messages": [{"role": "user", "content": "a"},
                                          {"role": "assistant", "content": "", "tool_calls": [{}]}]})"),
            "messages[1].tool_calls: tool calls are not supported");
  EXPECT_EQ(RequestError(R"({"messages": [{"role": "assistant", "content": "a", "reasoning_content": 3}]})"),
            "messages[0].reasoning_content: expected a string or null");
  EXPECT_EQ(RequestError(R"({"messages": [{"role": "user", "content": "a"}], "tools": [{"name": "f"}]})"),
            "tools: tool definitions are not supported");
  EXPECT_EQ(RequestError(R"({"messages": [{"role": "user", "content": "a"}], "enable_thinking": "no"})"),
            "enable_thinking: expected a boolean");
  EXPECT_EQ(RequestError(R"({"messages": [{"role": "user", "content": "a"}], "add_generation_prompt": 1})"),
            "add_generation_prompt: expected a boolean");
}

TEST(ChatTemplate, OnlyQwen3TemplatesAreAccepted) {
  EXPECT_TRUE(CheckChatTemplateSupported("").ok());
  Status s = CheckChatTemplateSupported("{% for m in messages %}{{ m.content }}{% endfor %}");
  EXPECT_EQ(s.code(), StatusCode::kFailedPrecondition);
  EXPECT_EQ(s.message(),
            "tokenizer_config.json: chat_template is not Qwen3's (missing \"<|im_start|>\"); only the "
            "Qwen3 ChatML template is supported");
}

}  // namespace
}  // namespace dms
