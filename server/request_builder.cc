#include "server/request_builder.h"

#include <algorithm>

#include "engine/runtime/chat_protect.h"
#include "engine/tokenizer/chat_template.h"

namespace dms::server {
namespace {

constexpr size_t kMaxRequestIdBytes = 128;
constexpr char kNoTokenizer[] =
    "this model has no tokenizer (no tokenizer.json in the checkpoint): send prompt_token_ids";

Status PrefixField(const Status& st, const std::string& field) {
  return st.ok() ? st : Status(st.code(), field + "." + st.message());
}

// Fields shared by Generate and Chat.
template <typename Proto>
Status FillCommon(const Proto& req, const ModelLimits& limits, GenerationRequest* out) {
  // Echoed in every streamed message: bounded like session_id.
  if (req.request_id().size() > kMaxRequestIdBytes) {
    return InvalidArgumentError("request_id is " + std::to_string(req.request_id().size()) +
                                " bytes; the limit is " + std::to_string(kMaxRequestIdBytes));
  }
  out->request_id = req.request_id();
  const v1::SamplingParams& s = req.sampling();
  SamplingParams& p = out->sampling;
  p = limits.sampling_defaults.Apply(SamplingParams{});
  if (s.has_temperature()) p.temperature = s.temperature();
  if (s.has_top_p()) p.top_p = s.top_p();
  if (s.has_top_k()) p.top_k = s.top_k();
  if (s.has_min_p()) p.min_p = s.min_p();
  if (s.has_seed()) p.seed = s.seed();
  if (s.has_repetition_penalty()) p.repetition_penalty = s.repetition_penalty();
  p.presence_penalty = s.presence_penalty();
  p.frequency_penalty = s.frequency_penalty();
  if (req.logprobs() > 20) {
    return InvalidArgumentError("logprobs must be in [0, 20], got " + std::to_string(req.logprobs()));
  }
  p.logprobs = static_cast<int>(req.logprobs());
  // Validate here so the message names the proto field path.
  Status st = ValidateSamplingParams(p);
  if (!st.ok() && st.message().rfind("logprobs", 0) != 0) return PrefixField(st, "sampling");
  DMS_RETURN_IF_ERROR(st);

  // The prompt is known by now: an explicit max_tokens must fit the context
  // with it (as vLLM); the default is capped to what fits.
  const int64_t room = limits.max_model_len - static_cast<int64_t>(out->prompt_tokens.size());
  if (req.max_tokens() == 0) {
    out->max_tokens = static_cast<uint32_t>(std::min<int64_t>(limits.default_max_tokens, room));
  } else if (static_cast<int64_t>(req.max_tokens()) > room) {
    return InvalidArgumentError("max_tokens " + std::to_string(req.max_tokens()) +
                                " is beyond the context: the prompt has " +
                                std::to_string(out->prompt_tokens.size()) +
                                " tokens and the model's context is " +
                                std::to_string(limits.max_model_len));
  } else {
    out->max_tokens = req.max_tokens();
  }
  if (limits.max_tokens_limit > 0 && out->max_tokens > limits.max_tokens_limit) {
    return InvalidArgumentError("max_tokens " + std::to_string(out->max_tokens) + " is over this server's limit of " +
                                std::to_string(limits.max_tokens_limit));
  }
  if (req.stop_size() > limits.max_stop_strings) {
    return InvalidArgumentError("stop has " + std::to_string(req.stop_size()) + " strings; the limit is " +
                                std::to_string(limits.max_stop_strings));
  }
  for (int i = 0; i < req.stop_size(); ++i) {
    if (req.stop(i).empty()) return InvalidArgumentError("stop[" + std::to_string(i) + "] is empty");
    if (static_cast<int>(req.stop(i).size()) > limits.max_stop_string_bytes) {
      return InvalidArgumentError("stop[" + std::to_string(i) + "] is " + std::to_string(req.stop(i).size()) +
                                  " bytes; the limit is " + std::to_string(limits.max_stop_string_bytes));
    }
    out->stop_strings.push_back(req.stop(i));
  }
  for (int i = 0; i < req.stop_token_ids_size(); ++i) {
    const int32_t id = req.stop_token_ids(i);
    if (id < 0 || id >= limits.vocab_size) {
      return InvalidArgumentError("stop_token_ids[" + std::to_string(i) + "]: " + std::to_string(id) +
                                  " is outside the vocabulary [0, " +
                                  std::to_string(limits.vocab_size) + ")");
    }
    out->stop_token_ids.push_back(id);
  }
  out->priority = req.priority();
  out->ignore_eos = req.ignore_eos();
  if (req.session_id().size() > 256) {
    return InvalidArgumentError("session_id is " + std::to_string(req.session_id().size()) +
                                " bytes; the limit is 256");
  }
  out->session_id = req.session_id();
  return OkStatus();
}

// kv_policy and compression_ratio, shared by Generate and Chat.
template <typename Proto>
Status FillKvPolicy(const Proto& req, const ModelLimits& limits, GenerationRequest* out) {
  out->kv_policy = limits.default_kv_policy;
  if (!req.kv_policy().empty()) {
    DMS_ASSIGN_OR_RETURN(out->kv_policy, ParseKvPolicy(req.kv_policy(), "kv_policy"));
  }
  out->compression_ratio = limits.default_compression_ratio;
  if (req.has_compression_ratio()) {
    DMS_RETURN_IF_ERROR(ValidateCompressionRatio(req.compression_ratio(), "compression_ratio"));
    if (!IsTrainingFree(out->kv_policy)) {
      return InvalidArgumentError(std::string("compression_ratio applies to the training-free policies "
                                              "(knorm, snapkv, streaming, expected-attention), not to kv_policy '") +
                                  KvPolicyName(out->kv_policy) + "'");
    }
    out->compression_ratio = req.compression_ratio();
  }
  return OkStatus();
}

Status CheckPrompt(const std::vector<int32_t>& ids, const std::string& field, const ModelLimits& limits) {
  if (ids.empty()) return InvalidArgumentError(field + " is empty");
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= limits.vocab_size) {
      return InvalidArgumentError(field + "[" + std::to_string(i) + "]: token id " +
                                  std::to_string(ids[i]) + " is outside the vocabulary [0, " +
                                  std::to_string(limits.vocab_size) + ")");
    }
  }
  if (limits.max_prompt_tokens > 0 && static_cast<int64_t>(ids.size()) > limits.max_prompt_tokens) {
    return InvalidArgumentError(field + " has " + std::to_string(ids.size()) +
                                " tokens; this server's limit is " + std::to_string(limits.max_prompt_tokens));
  }
  if (static_cast<int64_t>(ids.size()) >= limits.max_model_len) {
    return InvalidArgumentError(field + " has " + std::to_string(ids.size()) +
                                " tokens, longer than the model's context of " +
                                std::to_string(limits.max_model_len) +
                                " tokens (leaving room for one generated token)");
  }
  return OkStatus();
}

}  // namespace

StatusOr<GenerationRequest> BuildGenerateRequest(const v1::GenerateRequest& req,
                                                 const Tokenizer* tokenizer,
                                                 const ModelLimits& limits) {
  GenerationRequest out;
  const bool has_text = !req.prompt().empty();
  const bool has_ids = req.prompt_token_ids_size() > 0;
  if (has_text && has_ids) {
    return InvalidArgumentError("prompt and prompt_token_ids are both set: give exactly one");
  }
  if (!has_text && !has_ids) {
    return InvalidArgumentError("prompt is empty: give prompt or prompt_token_ids");
  }
  if (has_text) {
    if (!tokenizer) return FailedPreconditionError(std::string("prompt: ") + kNoTokenizer);
    out.prompt_tokens = tokenizer->Encode(req.prompt(), /*allow_special=*/true);
    DMS_RETURN_IF_ERROR(CheckPrompt(out.prompt_tokens, "prompt", limits));
  } else {
    out.prompt_tokens.assign(req.prompt_token_ids().begin(), req.prompt_token_ids().end());
    DMS_RETURN_IF_ERROR(CheckPrompt(out.prompt_tokens, "prompt_token_ids", limits));
  }
  DMS_RETURN_IF_ERROR(FillCommon(req, limits, &out));
  if (!out.stop_strings.empty() && !tokenizer) {
    return FailedPreconditionError(std::string("stop: ") + kNoTokenizer);
  }
  DMS_RETURN_IF_ERROR(FillKvPolicy(req, limits, &out));
  if (req.has_protect_tokens()) {
    out.protect_tokens = static_cast<int>(std::min<uint32_t>(req.protect_tokens(), 1u << 30));
  }
  out.detokenize = tokenizer != nullptr;
  return out;
}

namespace {

std::vector<ChatMessage> ChatMessages(const v1::ChatRequest& req) {
  std::vector<ChatMessage> messages;
  for (const v1::ChatMessage& m : req.messages()) {
    ChatMessage cm{m.role(), m.content(), std::nullopt};
    if (m.has_reasoning_content()) cm.reasoning_content = m.reasoning_content();
    messages.push_back(std::move(cm));
  }
  return messages;
}

ChatOptions ChatRenderOptions(const v1::ChatRequest& req) {
  ChatOptions opts;
  opts.enable_thinking = req.has_enable_thinking() ? req.enable_thinking() : true;
  opts.add_generation_prompt = true;
  return opts;
}

}  // namespace

StatusOr<std::string> RenderChat(const v1::ChatRequest& req, const Tokenizer* tokenizer) {
  if (!tokenizer) return FailedPreconditionError(std::string("messages: ") + kNoTokenizer);
  DMS_RETURN_IF_ERROR(CheckChatTemplateSupported(tokenizer->chat_template()));
  return RenderChatTemplate(ChatMessages(req), ChatRenderOptions(req));
}

StatusOr<GenerationRequest> BuildChatRequest(const v1::ChatRequest& req, const Tokenizer* tokenizer,
                                             const ModelLimits& limits) {
  GenerationRequest out;
  DMS_ASSIGN_OR_RETURN(std::string text, RenderChat(req, tokenizer));
  out.prompt_tokens = tokenizer->Encode(text, /*allow_special=*/true);
  DMS_RETURN_IF_ERROR(CheckPrompt(out.prompt_tokens, "messages", limits));
  DMS_RETURN_IF_ERROR(FillCommon(req, limits, &out));
  DMS_RETURN_IF_ERROR(FillKvPolicy(req, limits, &out));
  if (IsTrainingFree(out.kv_policy)) {
    // The last user message and the generation prompt are never pruned.
    DMS_ASSIGN_OR_RETURN(out.protect_tokens, ChatProtectedTail(ChatMessages(req), ChatRenderOptions(req),
                                                               *tokenizer, out.prompt_tokens));
  }
  out.detokenize = true;
  return out;
}

}  // namespace dms::server
