#include "tests/fuzz/reference_chat.h"

#include <string_view>

namespace dms::fuzz {
namespace {

// Python's s.split(sep).
std::vector<std::string> Split(const std::string& s, const std::string& sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t at = s.find(sep); at != std::string::npos; at = s.find(sep, start)) {
    parts.push_back(s.substr(start, at - start));
    start = at + sep.size();
  }
  parts.push_back(s.substr(start));
  return parts;
}

// Python's s.lstrip('\n'), s.rstrip('\n'), s.strip('\n').
std::string LStrip(std::string s) {
  while (!s.empty() && s.front() == '\n') s.erase(s.begin());
  return s;
}
std::string RStrip(std::string s) {
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}
std::string Strip(std::string s) { return LStrip(RStrip(std::move(s))); }

bool StartsWith(const std::string& s, std::string_view p) { return s.compare(0, p.size(), p) == 0; }
bool EndsWith(const std::string& s, std::string_view p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

}  // namespace

std::string ReferenceChat(const std::vector<ChatMessage>& messages, bool enable_thinking,
                          bool add_generation_prompt) {
  std::string out;
  const int n = static_cast<int>(messages.size());
  if (messages[0].role == "system") out += "<|im_start|>system\n" + messages[0].content + "<|im_end|>\n";
  // {%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
  bool multi_step_tool = true;
  int last_query_index = n - 1;
  for (int k = 0; k < n; ++k) {  // messages[::-1]
    const int index = (n - 1) - k;
    const ChatMessage& m = messages[index];
    if (multi_step_tool && m.role == "user" &&
        !(StartsWith(m.content, "<tool_response>") && EndsWith(m.content, "</tool_response>"))) {
      multi_step_tool = false;
      last_query_index = index;
    }
  }
  for (int i = 0; i < n; ++i) {
    const ChatMessage& m = messages[i];
    if (m.role == "user" || (m.role == "system" && i != 0)) {
      out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>" + "\n";
    } else if (m.role == "assistant") {
      std::string content = m.content;
      std::string reasoning_content;
      if (m.reasoning_content.has_value()) {
        reasoning_content = *m.reasoning_content;
      } else if (m.content.find("</think>") != std::string::npos) {
        content = LStrip(Split(m.content, "</think>").back());
        reasoning_content = LStrip(Split(RStrip(Split(m.content, "</think>")[0]), "<think>").back());
      }
      const bool last = i == n - 1;
      if (i > last_query_index && (last || (!last && !reasoning_content.empty()))) {
        out += "<|im_start|>" + m.role + "\n<think>\n" + Strip(reasoning_content) + "\n</think>\n\n" +
               LStrip(content);
      } else {
        out += "<|im_start|>" + m.role + "\n" + content;
      }
      out += "<|im_end|>\n";
    }
  }
  if (add_generation_prompt) {
    out += "<|im_start|>assistant\n";
    if (!enable_thinking) out += "<think>\n\n</think>\n\n";
  }
  return out;
}

}  // namespace dms::fuzz
