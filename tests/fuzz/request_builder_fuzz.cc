// Fuzz target: request validation of the server (server/request_builder.h),
// BuildGenerateRequest / BuildChatRequest on a v1::GenerateRequest or
// v1::ChatRequest parsed from the input with ParseFromArray.
//
// Input: byte 0 picks the RPC (bit 0: Chat), whether the model has a
// tokenizer (bit 1 set: none) and one of four limit presets (bits 2-3, from
// generous to a two-token context); the rest is the serialized message.
//
// Properties: a refusal is INVALID_ARGUMENT (FAILED_PRECONDITION only without
// a tokenizer) with one non-empty line starting with the field it names. A
// request is accepted exactly when it meets the documented contract, checked
// by an independent transcription (ExpectAccept below), and an accepted one
// satisfies the limits it was validated against: prompt ids in the
// vocabulary and within max_prompt_tokens, prompt + max_tokens within the
// context, max_tokens within the server's limit, stop strings within count
// and length, every field carried over unchanged, the prompt ids equal to
// encoding the prompt (or the chat template's rendering, per the reference).
#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>
#include <google/protobuf/stubs/logging.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "dms/v1/inference.pb.h"
#include "server/request_builder.h"
#include "tests/fuzz/fuzz_util.h"
#include "tests/fuzz/reference_chat.h"

namespace dms::fuzz {
namespace {

using server::ModelLimits;

// vocab_size, max_model_len, default_max_tokens, max_prompt_tokens,
// max_tokens_limit, max_stop_strings, max_stop_string_bytes.
const ModelLimits kPresets[4] = {
    {151936, 40960, 256, 0, 0, 16, 256},
    {1000, 64, 256, 0, 0, 4, 8},
    {151936, 4096, 128, 32, 512, 2, 16},
    {151669, 2, 1, 1, 1, 0, 1},
};

// Bytes of session_id (field 11 of newer protos; at most 256), read by
// reflection so this target builds against protos with or without it.
size_t SessionIdBytes(const google::protobuf::Message& req) {
  const google::protobuf::FieldDescriptor* f = req.GetDescriptor()->FindFieldByName("session_id");
  return f == nullptr ? 0 : req.GetReflection()->GetString(req, f).size();
}

// kv_policy / compression_ratio (fields 12-13 of newer protos), by reflection
// too: whether the contract accepts them (the presets default to "auto").
bool KvPolicyAcceptable(const google::protobuf::Message& req) {
  const auto* d = req.GetDescriptor();
  const auto* r = req.GetReflection();
  const google::protobuf::FieldDescriptor* policy = d->FindFieldByName("kv_policy");
  const google::protobuf::FieldDescriptor* ratio = d->FindFieldByName("compression_ratio");
  if (policy == nullptr || ratio == nullptr) return true;
  const std::string name = r->GetString(req, policy);
  const bool known = name.empty() || name == "auto" || name == "dense" || name == "knorm" || name == "snapkv" ||
                     name == "streaming" || name == "expected-attention";
  if (!known) return false;
  if (!r->HasField(req, ratio)) return true;
  const double v = r->GetDouble(req, ratio);
  const bool prunes = name == "knorm" || name == "snapkv" || name == "streaming" || name == "expected-attention";
  return v >= 0.0 && v < 1.0 && prunes;
}

// The prompt ids the request stands for, or why it has none.
struct Prompt {
  std::vector<int32_t> ids;
  bool ok = true;
};

// The verdict the contract in proto/dms/v1/inference.proto and
// server/request_builder.h gives, computed without the code under test.
template <typename Proto>
bool ExpectAccept(const Proto& req, const Prompt& prompt, const Tokenizer* tok, const ModelLimits& lim) {
  if (!prompt.ok || prompt.ids.empty()) return false;
  for (int32_t id : prompt.ids) {
    if (id < 0 || id >= lim.vocab_size) return false;
  }
  const auto n = static_cast<int64_t>(prompt.ids.size());
  if (lim.max_prompt_tokens > 0 && n > lim.max_prompt_tokens) return false;
  if (n >= lim.max_model_len) return false;
  if (req.logprobs() > 20) return false;
  SamplingParams p;
  const v1::SamplingParams& s = req.sampling();
  p.temperature = s.has_temperature() ? s.temperature() : 1.0f;
  p.top_p = s.has_top_p() ? s.top_p() : 1.0f;
  p.top_k = s.top_k();
  p.min_p = s.min_p();
  p.repetition_penalty = s.has_repetition_penalty() ? s.repetition_penalty() : 1.0f;
  p.presence_penalty = s.presence_penalty();
  p.frequency_penalty = s.frequency_penalty();
  p.logprobs = static_cast<int>(req.logprobs());
  if (!ValidateSamplingParams(p).ok()) return false;
  const int64_t room = lim.max_model_len - n;
  const int64_t max_tokens = req.max_tokens() == 0 ? std::min<int64_t>(lim.default_max_tokens, room) : req.max_tokens();
  if (max_tokens > room) return false;
  if (lim.max_tokens_limit > 0 && max_tokens > lim.max_tokens_limit) return false;
  if (req.stop_size() > lim.max_stop_strings) return false;
  for (const std::string& stop : req.stop()) {
    if (stop.empty() || static_cast<int>(stop.size()) > lim.max_stop_string_bytes) return false;
  }
  for (int32_t id : req.stop_token_ids()) {
    if (id < 0 || id >= lim.vocab_size) return false;
  }
  if (SessionIdBytes(req) > 256) return false;
  if (req.request_id().size() > 128) return false;
  if (req.stop_size() > 0 && tok == nullptr) return false;
  if (!KvPolicyAcceptable(req)) return false;
  return true;
}

template <typename Proto>
void CheckAccepted(const Proto& req, const GenerationRequest& out, const Prompt& prompt, const Tokenizer* tok,
                   const ModelLimits& lim) {
  FUZZ_CHECK(out.request_id == req.request_id(), "request_id changed");
  FUZZ_CHECK(out.prompt_tokens == prompt.ids, "prompt ids differ from the encoded prompt");
  const auto n = static_cast<int64_t>(out.prompt_tokens.size());
  FUZZ_CHECK(n >= 1 && n < lim.max_model_len, "prompt of " + std::to_string(n) + " tokens");
  FUZZ_CHECK(lim.max_prompt_tokens == 0 || n <= lim.max_prompt_tokens, "prompt over max_prompt_tokens");
  for (int32_t id : out.prompt_tokens) FUZZ_CHECK(id >= 0 && id < lim.vocab_size, "prompt id " + std::to_string(id));
  FUZZ_CHECK(out.max_tokens >= 1 && n + out.max_tokens <= lim.max_model_len,
             "max_tokens " + std::to_string(out.max_tokens) + " after " + std::to_string(n) + " prompt tokens");
  FUZZ_CHECK(req.max_tokens() == 0 || out.max_tokens == req.max_tokens(), "max_tokens changed");
  FUZZ_CHECK(lim.max_tokens_limit == 0 || out.max_tokens <= lim.max_tokens_limit, "max_tokens over the limit");
  FUZZ_CHECK(std::equal(out.stop_strings.begin(), out.stop_strings.end(), req.stop().begin(), req.stop().end()),
             "stop strings changed");
  FUZZ_CHECK(static_cast<int>(out.stop_strings.size()) <= lim.max_stop_strings, "too many stop strings");
  for (const std::string& s : out.stop_strings) {
    FUZZ_CHECK(!s.empty() && static_cast<int>(s.size()) <= lim.max_stop_string_bytes, "stop string length");
  }
  FUZZ_CHECK(std::equal(out.stop_token_ids.begin(), out.stop_token_ids.end(), req.stop_token_ids().begin(),
                        req.stop_token_ids().end()),
             "stop_token_ids changed");
  FUZZ_CHECK(ValidateSamplingParams(out.sampling).ok(), "invalid sampling params accepted");
  FUZZ_CHECK(out.sampling.logprobs == static_cast<int>(req.logprobs()), "logprobs changed");
  FUZZ_CHECK(out.sampling.seed.has_value() == req.sampling().has_seed() &&
                 (!req.sampling().has_seed() || *out.sampling.seed == req.sampling().seed()),
             "seed changed");
  FUZZ_CHECK(out.priority == req.priority() && out.ignore_eos == req.ignore_eos(), "priority or ignore_eos changed");
  FUZZ_CHECK(out.detokenize == (tok != nullptr), "detokenize");
}

void CheckRefused(const Status& st, const Tokenizer* tok) {
  FUZZ_CHECK(st.code() == StatusCode::kInvalidArgument ||
                 (st.code() == StatusCode::kFailedPrecondition && tok == nullptr),
             std::string(StatusCodeName(st.code())) + ": " + Printable(st.message()));
  CheckErrorAnyPrefix(st, {"prompt", "messages", "max_tokens ", "stop", "sampling.", "logprobs ", "session_id ",
                           "kv_policy: ", "compression_ratio ", "request_id "});
}

template <typename Proto>
void Check(const Proto& req, const StatusOr<GenerationRequest>& out, const Prompt& prompt, const Tokenizer* tok,
           const ModelLimits& lim) {
  const bool expect = ExpectAccept(req, prompt, tok, lim);
  FUZZ_CHECK(out.ok() == expect, std::string(expect ? "refused a valid request: " + out.status().message()
                                                     : "accepted a request the contract refuses"));
  if (out.ok()) {
    CheckAccepted(req, *out, prompt, tok, lim);
  } else {
    CheckRefused(out.status(), tok);
  }
}

void FuzzGenerate(const v1::GenerateRequest& req, const Tokenizer* tok, const ModelLimits& lim) {
  Prompt prompt;
  if (!req.prompt().empty() && req.prompt_token_ids_size() > 0) {
    prompt.ok = false;  // both given
  } else if (!req.prompt().empty()) {
    prompt.ok = tok != nullptr;
    if (tok) prompt.ids = tok->Encode(req.prompt(), /*allow_special=*/true);
  } else {
    prompt.ids.assign(req.prompt_token_ids().begin(), req.prompt_token_ids().end());
  }
  Check(req, server::BuildGenerateRequest(req, tok, lim), prompt, tok, lim);
}

void FuzzChat(const v1::ChatRequest& req, const Tokenizer* tok, const ModelLimits& lim) {
  Prompt prompt;
  std::vector<ChatMessage> messages;
  for (const v1::ChatMessage& m : req.messages()) {
    if (m.role() != "system" && m.role() != "user" && m.role() != "assistant") prompt.ok = false;
    messages.push_back({m.role(), m.content(), std::nullopt});
    if (m.has_reasoning_content()) messages.back().reasoning_content = m.reasoning_content();
  }
  if (messages.empty() || tok == nullptr) prompt.ok = false;
  if (prompt.ok) {
    const bool thinking = req.has_enable_thinking() ? req.enable_thinking() : true;
    prompt.ids = tok->Encode(ReferenceChat(messages, thinking, /*add_generation_prompt=*/true), true);
  }
  Check(req, server::BuildChatRequest(req, tok, lim), prompt, tok, lim);
}

}  // namespace
}  // namespace dms::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  google::protobuf::SetLogHandler(nullptr);  // malformed UTF-8 is refused anyway; keep runs quiet
  dms::fuzz::QwenTokenizer();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dms::fuzz;
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  const dms::Tokenizer* tok = (flags & 2) ? nullptr : &QwenTokenizer();
  const dms::server::ModelLimits& lim = kPresets[(flags >> 2) & 3];
  if (flags & 1) {
    dms::v1::ChatRequest req;
    if (!req.ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
    FuzzChat(req, tok, lim);
  } else {
    dms::v1::GenerateRequest req;
    if (!req.ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
    FuzzGenerate(req, tok, lim);
  }
  return 0;
}
