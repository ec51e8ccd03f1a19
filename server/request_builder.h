// Turns Generate/Chat/Tokenize messages into engine requests, validating every
// field with an INVALID_ARGUMENT that names it ("sampling.top_p must be in
// (0, 1], got 1.5"), or FAILED_PRECONDITION when the model cannot serve the
// request (text without a tokenizer). Stateless; any thread.
#pragma once

#include <vector>

#include "dms/v1/inference.pb.h"
#include "engine/runtime/generation_config.h"
#include "engine/runtime/request.h"
#include "engine/tokenizer/tokenizer.h"

namespace dms::server {

struct ModelLimits {
  int vocab_size = 0;
  int max_model_len = 0;
  uint32_t default_max_tokens = 256;
  // Operator limits (flags); 0 means "the model's own limit".
  int max_prompt_tokens = 0;
  uint32_t max_tokens_limit = 0;
  int max_stop_strings = 16;
  int max_stop_string_bytes = 256;
  // KV policy when a request leaves kv_policy / compression_ratio unset
  // (--kv-policy, --compression-ratio).
  KvPolicyKind default_kv_policy = KvPolicyKind::kAuto;
  double default_compression_ratio = 0.5;
  // Sampling fields a request leaves unset (generation_config.json).
  GenerationDefaults sampling_defaults;
};

StatusOr<GenerationRequest> BuildGenerateRequest(const v1::GenerateRequest& req,
                                                 const Tokenizer* tokenizer,
                                                 const ModelLimits& limits);

StatusOr<GenerationRequest> BuildChatRequest(const v1::ChatRequest& req, const Tokenizer* tokenizer,
                                             const ModelLimits& limits);

// Renders a chat request's messages with the chat template (text only).
StatusOr<std::string> RenderChat(const v1::ChatRequest& req, const Tokenizer* tokenizer);

}  // namespace dms::server
