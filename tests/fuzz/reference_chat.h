// An independent model of Qwen3's chat template for the fuzz targets: a
// line-by-line transcription of the Jinja source in tokenizer_config.json
// using Python's string operations (split, strip), written apart from
// engine/tokenizer/chat_template.cc so the two can be compared.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "engine/tokenizer/chat_template.h"

namespace dms::fuzz {

// The template's output for messages whose roles are all system, user or
// assistant (the caller checks roles).
std::string ReferenceChat(const std::vector<ChatMessage>& messages, bool enable_thinking,
                          bool add_generation_prompt);

}  // namespace dms::fuzz
