// Benchmark prompts: random token ids of chosen lengths, prompts or chats from
// a JSONL file, or needle-in-a-haystack chats (see haystack.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "client/client_util.h"
#include "dms/v1/inference.pb.h"
#include "common/status.h"

namespace dms::client {

struct BenchPrompt {
  enum class Kind { kTokenIds, kText, kChat };
  Kind kind = Kind::kTokenIds;
  std::vector<int32_t> token_ids;                          // kTokenIds
  std::string text;                                        // kText
  std::vector<std::pair<std::string, std::string>> chat;   // kChat: (role, content)
  std::optional<bool> enable_thinking;                     // kChat
  uint32_t max_tokens = 0;
  int64_t input_tokens = -1;  // when known before sending
};

struct RandomDatasetOptions {
  IntRange input_len{128, 128};
  IntRange output_len{64, 64};
  int32_t vocab_size = 0;  // ids are drawn from [0, min(vocab_size, 151643)): no special tokens
  uint64_t seed = 0;
  int64_t count = 0;
};

// `count` prompts of uniformly random lengths and ids (deterministic in seed).
StatusOr<std::vector<BenchPrompt>> MakeRandomPrompts(const RandomDatasetOptions& options);

// One JSON object per line (blank lines skipped), each one of
//   {"prompt": "text"}                       -> Generate with a text prompt
//   {"prompt_token_ids": [1, 2, 3]}          -> Generate with token ids
//   {"messages": [{"role": "user", "content": "..."}, ...], "enable_thinking": false}
// with an optional "max_tokens" (else drawn from default_output_len).
// Errors name the file and line: "prompts.jsonl:3: ...".
StatusOr<std::vector<BenchPrompt>> ParseJsonlPrompts(const std::string& contents, const std::string& name,
                                                     IntRange default_output_len, uint64_t seed);
StatusOr<std::vector<BenchPrompt>> LoadJsonlPrompts(const std::string& path, IntRange default_output_len,
                                                    uint64_t seed);

// Builds the request for a prompt (the caller adds sampling and ids).
void ToGenerateRequest(const BenchPrompt& prompt, dms::v1::GenerateRequest* request);
void ToChatRequest(const BenchPrompt& prompt, dms::v1::ChatRequest* request);

}  // namespace dms::client
