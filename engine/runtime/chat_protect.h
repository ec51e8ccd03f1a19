// The protected tail of a chat prompt for training-free KV policies: the last
// user message and everything after it, the generation prompt included, are
// never pruned (docs/kv-policies.md).
#pragma once

#include <cstdint>
#include <span>

#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "common/status.h"

namespace dms {

// How many trailing tokens of `prompt_ids` (the encoding of the rendered
// `messages`) to protect. The tail starts at the last user message that is
// not a wrapped tool response (the template's "last query"), or at the
// generation prompt when there is none. When the rendering cannot be split
// there, or the prefix does not tokenize to a prefix of `prompt_ids`, it
// errs on the safe side: the tail then starts earlier (at worst the whole
// prompt is protected).
StatusOr<int> ChatProtectedTail(std::span<const ChatMessage> messages, const ChatOptions& options,
                                const Tokenizer& tokenizer, std::span<const int32_t> prompt_ids);

}  // namespace dms
