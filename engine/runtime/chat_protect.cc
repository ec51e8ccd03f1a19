#include "engine/runtime/chat_protect.h"

#include <string>
#include <vector>

namespace dms {
namespace {

bool IsToolResponse(const std::string& content) {
  return content.starts_with("<tool_response>") && content.ends_with("</tool_response>");
}

}  // namespace

StatusOr<int> ChatProtectedTail(std::span<const ChatMessage> messages, const ChatOptions& options,
                                const Tokenizer& tokenizer, std::span<const int32_t> prompt_ids) {
  const int total = static_cast<int>(prompt_ids.size());
  DMS_ASSIGN_OR_RETURN(std::string full, RenderChatTemplate(messages, options));
  size_t last_query = messages.size();
  for (size_t k = messages.size(); k-- > 0;) {
    if (messages[k].role == "user" && !IsToolResponse(messages[k].content)) {
      last_query = k;
      break;
    }
  }
  // The rendering of the tail on its own: from the last query the template
  // renders every later message the same way (it is the last query there
  // too), so it is a suffix of the full text.
  std::string tail;
  if (last_query < messages.size()) {
    DMS_ASSIGN_OR_RETURN(tail, RenderChatTemplate(messages.subspan(last_query), options));
  } else {
    ChatOptions no_prompt = options;
    no_prompt.add_generation_prompt = false;
    DMS_ASSIGN_OR_RETURN(std::string body, RenderChatTemplate(messages, no_prompt));
    if (!full.starts_with(body)) return total;
    tail = full.substr(body.size());
  }
  if (tail.size() > full.size() || !full.ends_with(tail)) return total;
  const std::vector<int32_t> head =
      tokenizer.Encode(std::string_view(full).substr(0, full.size() - tail.size()), /*allow_special=*/true);
  // Tokens shared with the prompt's start; a merge across the cut shortens it.
  int common = 0;
  while (common < total && common < static_cast<int>(head.size()) && head[common] == prompt_ids[common]) {
    ++common;
  }
  return total - common;
}

}  // namespace dms
