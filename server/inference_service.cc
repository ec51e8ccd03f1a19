#include "server/inference_service.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <cstdio>
#include <random>

#include "engine/kv/kv_capacity.h"
#include "server/generate_stream.h"
#include "server/logging.h"
#include "server/request_builder.h"
#include "server/status_mapping.h"
#include "server/wire.h"

namespace dms::server {
namespace {

// A write reactor that only reports an error status.
class FailedStream : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  explicit FailedStream(const grpc::Status& st) { Finish(st); }
  void OnDone() override { delete this; }
};

grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* ctx, const Status& st) {
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  r->Finish(ToGrpcStatus(st));
  return r;
}

// Serializes `response` into `out` and finishes OK.
grpc::ServerUnaryReactor* ReplyWith(grpc::CallbackServerContext* ctx,
                                    const google::protobuf::Message& response,
                                    grpc::ByteBuffer* out) {
  SerializeMessage(response, out);
  return Reply(ctx, OkStatus());
}

StatusOr<GenerationRequest> BuildRequest(const v1::GenerateRequest& req, const Tokenizer* tokenizer,
                                         const ModelLimits& limits) {
  return BuildGenerateRequest(req, tokenizer, limits);
}
StatusOr<GenerationRequest> BuildRequest(const v1::ChatRequest& req, const Tokenizer* tokenizer,
                                         const ModelLimits& limits) {
  return BuildChatRequest(req, tokenizer, limits);
}

// SplitMix64's finalizer: a bijection, so distinct counters give distinct ids.
uint64_t Mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

InferenceService::InferenceService(ServerMetrics* metrics, RequestAuthorizer* auth)
    : metrics_(metrics),
      auth_(auth),
      id_key_((static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}()) {}

void InferenceService::SetModel(const ServingModel& model) {
  model_ = model;
  model_.limits.vocab_size = model.engine->model().config.vocab_size;
  model_.limits.max_model_len = model.engine->model().max_model_len;
  model_ready_.store(true, std::memory_order_release);
}

StatusOr<std::string> InferenceService::CheckServing(const grpc::CallbackServerContext& ctx,
                                                     std::string_view rpc) const {
  if (draining_.load()) return UnavailableError("server is shutting down");
  if (!model_ready_.load(std::memory_order_acquire)) return UnavailableError("model is loading");
  return auth_->Authorize(ctx, rpc);
}

std::string InferenceService::NewRequestId() {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "req-%016llx",
                static_cast<unsigned long long>(Mix(id_key_ ^ Mix(next_id_.fetch_add(1)))));
  return buf;
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* InferenceService::StartStream(
    grpc::CallbackServerContext* ctx, const std::string& client_id,
    StatusOr<GenerationRequest> request) {
  if (!request.ok()) {
    spdlog::info("request id={} peer={} refused: {}", LogEscape(client_id), LogEscape(ctx->peer()),
                 LogEscape(request.status().message(), 256));
    return new FailedStream(ToGrpcStatus(request.status()));
  }
  Status slot = auth_->AcquireStream(ctx->peer());
  if (!slot.ok()) {
    spdlog::info("request id={} peer={} refused: {}", LogEscape(client_id), LogEscape(ctx->peer()),
                 LogEscape(slot.message(), 256));
    return new FailedStream(ToGrpcStatus(slot));
  }
  if (request->request_id.empty()) request->request_id = NewRequestId();
  spdlog::info("request id={} peer={} prompt_tokens={} max_tokens={}", LogEscape(request->request_id),
               LogEscape(ctx->peer()), request->prompt_tokens.size(), request->max_tokens);
  RequestAuthorizer* auth = auth_;
  std::string peer = ctx->peer();
  return GenerateStream::Start(ctx, model_.engine, std::move(*request), metrics_,
                               [auth, peer] { auth->ReleaseStream(peer); });
}

template <typename Proto>
grpc::ServerWriteReactor<grpc::ByteBuffer>* InferenceService::OpenStream(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer& bytes, const char* rpc) {
  StatusOr<std::string> caller = CheckServing(*ctx, rpc);
  if (!caller.ok()) return new FailedStream(ToGrpcStatus(caller.status()));
  Proto req;
  if (Status st = ParseMessage(bytes, &req); !st.ok()) return StartStream(ctx, "", st);
  StatusOr<GenerationRequest> request = BuildRequest(req, model_.tokenizer, model_.limits);
  if (request.ok()) request->owner = *caller;
  return StartStream(ctx, req.request_id(), std::move(request));
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* InferenceService::Generate(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req) {
  return OpenStream<v1::GenerateRequest>(ctx, *req, "Inference/Generate");
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* InferenceService::Chat(grpc::CallbackServerContext* ctx,
                                                                   const grpc::ByteBuffer* req) {
  return OpenStream<v1::ChatRequest>(ctx, *req, "Inference/Chat");
}

StatusOr<v1::TokenizeResponse> InferenceService::TokenizeText(
    const v1::TokenizeRequest& req) const {
  if (!model_.tokenizer) {
    return FailedPreconditionError(
        "this model has no tokenizer (no tokenizer.json in the checkpoint)");
  }
  v1::TokenizeResponse resp;
  std::string text;
  // Special tokens written in the text are recognised unless the request
  // says otherwise: the same ids Generate serves for that text.
  bool allow_special = !req.has_allow_special() || req.allow_special();
  if (req.has_chat()) {
    DMS_ASSIGN_OR_RETURN(text, RenderChat(req.chat(), model_.tokenizer));
    allow_special = true;
  } else {
    text = req.text();
  }
  const std::vector<int32_t> ids = model_.tokenizer->Encode(text, allow_special);
  // No reply larger than a request the model could serve.
  if (static_cast<int64_t>(ids.size()) > model_.limits.max_model_len) {
    return InvalidArgumentError(
        std::string(req.has_chat() ? "chat" : "text") + " has " + std::to_string(ids.size()) +
        " tokens, more than the model's context of " + std::to_string(model_.limits.max_model_len));
  }
  for (int32_t id : ids) resp.add_token_ids(id);
  if (req.has_chat()) resp.set_text(text);  // the rendered template; plain text is not echoed
  return resp;
}

grpc::ServerUnaryReactor* InferenceService::Tokenize(grpc::CallbackServerContext* ctx,
                                                     const grpc::ByteBuffer* req,
                                                     grpc::ByteBuffer* resp) {
  StatusOr<std::string> caller = CheckServing(*ctx, "Inference/Tokenize");
  if (!caller.ok()) return Reply(ctx, caller.status());
  v1::TokenizeRequest request;
  if (Status st = ParseMessage(*req, &request); !st.ok()) return Reply(ctx, st);
  StatusOr<v1::TokenizeResponse> response = TokenizeText(request);
  if (!response.ok()) return Reply(ctx, response.status());
  return ReplyWith(ctx, *response, resp);
}

void FillModelInfo(const ServingModel& model, uint32_t context_length, v1::ModelInfo* info) {
  const ModelDescription& served = model.engine->model();
  const ModelConfig& c = served.config;
  info->set_model_path(model.model_path);
  info->set_model_type(c.model_type);
  info->set_num_layers(c.num_layers);
  info->set_hidden_size(c.hidden_size);
  info->set_intermediate_size(c.intermediate_size);
  info->set_num_attention_heads(c.num_q_heads);
  info->set_num_key_value_heads(c.num_kv_heads);
  info->set_head_dim(c.head_dim);
  info->set_vocab_size(c.vocab_size);
  info->set_max_model_len(served.max_model_len);
  info->set_rope_theta(c.rope_theta);
  info->set_tie_word_embeddings(c.tie_word_embeddings);
  v1::DmsInfo* d = info->mutable_dms();
  d->set_enabled(c.dms.enabled);
  d->set_variant(!c.dms.enabled ? "none" : c.dms.separate_alpha ? "projection" : "single_neuron");
  d->set_window_size(c.dms.window_size);
  d->set_alpha_scale(c.dms.alpha_scale);
  d->set_initial_alpha_offset(c.dms.initial_alpha_offset);
  d->set_alpha_per(c.dms.alpha_per == DmsAlphaPer::kLayer ? "layer" : "head");
  d->set_eviction_disabled(c.dms.disable_eviction);
  d->set_target_compression(c.dms.cr);
  info->set_has_tokenizer(model.tokenizer != nullptr);
  const BackendInfo& bi = served.backend;
  info->set_backend(bi.name);
  info->set_device(bi.device);
  info->set_kv_block_size(bi.kv_block_size);
  info->set_kv_num_blocks(bi.kv_num_blocks);
  info->set_kv_bytes_per_block(bi.kv_bytes_per_block);
  info->set_weights_bytes(bi.weights_bytes);
  info->set_kv_pool_bytes(bi.kv_pool_bytes);
  info->set_workspace_bytes(bi.workspace_bytes);
  info->set_cuda_tuning(bi.tuning);
  const int64_t heads = static_cast<int64_t>(c.num_layers) * c.num_kv_heads;
  info->set_kv_capacity_tokens(static_cast<int64_t>(bi.kv_num_blocks) * bi.kv_block_size / heads);
  for (int32_t id : model.eos_token_ids) info->add_eos_token_ids(id);
  info->set_version(DMS_VERSION);
  const SamplingParams defaults = model.limits.sampling_defaults.Apply(SamplingParams{});
  v1::SamplingParams* ds = info->mutable_default_sampling();
  ds->set_temperature(defaults.temperature);
  ds->set_top_p(defaults.top_p);
  ds->set_top_k(defaults.top_k);
  ds->set_min_p(defaults.min_p);
  ds->set_repetition_penalty(defaults.repetition_penalty);

  // Admitted-stream capacity at a context length, by the projection the
  // scheduler admits with (engine/kv/kv_capacity.h) at the live ratio.
  const EngineStats st = model.engine->Stats();
  if (st.device_memory.available) {
    info->set_device_memory_used_bytes(st.device_memory.used);
    info->set_device_memory_total_bytes(st.device_memory.total);
  }
  double ratio = st.compression_ratio;
  if (!c.dms.enabled || c.dms.disable_eviction) ratio = 1.0;
  info->set_measured_compression_ratio(ratio);
  const int64_t t = context_length > 0 ? context_length : served.max_model_len;
  info->set_capacity_context_length(static_cast<uint32_t>(t));
  KvFootprint footprint = st.kv_footprint;
  footprint.live_ratio = ratio;
  const int64_t per_stream = std::max<int64_t>(1, ProjectedBlocks(t, footprint));
  info->set_estimated_max_streams(bi.kv_num_blocks / per_stream);
}

grpc::ServerUnaryReactor* InferenceService::GetModelInfo(grpc::CallbackServerContext* ctx,
                                                         const grpc::ByteBuffer* req,
                                                         grpc::ByteBuffer* resp) {
  StatusOr<std::string> caller = CheckServing(*ctx, "Inference/GetModelInfo");
  if (!caller.ok()) return Reply(ctx, caller.status());
  v1::GetModelInfoRequest request;
  if (Status st = ParseMessage(*req, &request); !st.ok()) return Reply(ctx, st);
  v1::ModelInfo info;
  FillModelInfo(model_, request.context_length(), &info);
  return ReplyWith(ctx, info, resp);
}

grpc::ServerUnaryReactor* InferenceService::GetServerStatus(grpc::CallbackServerContext* ctx,
                                                            const grpc::ByteBuffer* req,
                                                            grpc::ByteBuffer* resp) {
  StatusOr<std::string> caller = auth_->Authorize(*ctx, "Inference/GetServerStatus");
  if (!caller.ok()) return Reply(ctx, caller.status());
  v1::GetServerStatusRequest request;
  if (Status st = ParseMessage(*req, &request); !st.ok()) return Reply(ctx, st);
  v1::ServerStatus status;
  status.set_ready(ready() && !draining_.load());
  status.set_draining(draining_.load());
  if (ready()) {
    const EngineStats st = model_.engine->Stats();
    status.set_requests_running(st.running);
    status.set_requests_waiting(st.waiting);
    status.set_kv_blocks_total(st.kv.num_blocks);
    status.set_kv_blocks_used(st.kv.blocks_used);
    status.set_kv_blocks_free(st.kv.blocks_free);
    status.set_kv_logical_tokens(st.kv.logical_tokens);
    status.set_kv_retained_tokens(st.kv.retained_tokens);
    status.set_preemptions(st.preemptions);
    status.set_steps(st.steps);
    status.set_generated_tokens(st.tokens_generated);
  }
  return ReplyWith(ctx, status, resp);
}

}  // namespace dms::server
