#include "server/inference_service.h"

#include <spdlog/spdlog.h>

#include <cmath>

#include "server/generate_stream.h"
#include "server/logging.h"
#include "server/request_builder.h"
#include "server/status_mapping.h"

namespace dms::server {
namespace {

// A write reactor that only reports an error status.
class FailedStream : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  explicit FailedStream(const grpc::Status& st) { Finish(st); }
  void OnDone() override { delete this; }
};

grpc::ServerUnaryReactor* Reply(grpc::CallbackServerContext* ctx, const Status& st) {
  grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
  r->Finish(ToGrpcStatus(st));
  return r;
}

}  // namespace

void InferenceService::SetModel(const ServingModel& model) {
  model_ = model;
  model_.limits.vocab_size = model.engine->backend().config().vocab_size;
  model_.limits.max_model_len = model.engine->max_model_len();
  model_ready_.store(true, std::memory_order_release);
}

Status InferenceService::CheckServing(const grpc::CallbackServerContext& ctx) const {
  if (draining_.load()) return UnavailableError("server is shutting down");
  if (!model_ready_.load(std::memory_order_acquire)) return UnavailableError("model is loading");
  return auth_->Authorize(ctx);
}

std::string InferenceService::NewRequestId() {
  return "req-" + std::to_string(next_id_.fetch_add(1));
}

grpc::ServerWriteReactor<v1::GenerateResponse>* InferenceService::StartStream(
    grpc::CallbackServerContext* ctx, const std::string& client_id, StatusOr<GenerationRequest> request) {
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

grpc::ServerWriteReactor<v1::GenerateResponse>* InferenceService::Generate(
    grpc::CallbackServerContext* ctx, const v1::GenerateRequest* req) {
  Status st = CheckServing(*ctx);
  if (!st.ok()) return new FailedStream(ToGrpcStatus(st));
  return StartStream(ctx, req->request_id(), BuildGenerateRequest(*req, model_.tokenizer, model_.limits));
}

grpc::ServerWriteReactor<v1::GenerateResponse>* InferenceService::Chat(grpc::CallbackServerContext* ctx,
                                                                       const v1::ChatRequest* req) {
  Status st = CheckServing(*ctx);
  if (!st.ok()) return new FailedStream(ToGrpcStatus(st));
  return StartStream(ctx, req->request_id(), BuildChatRequest(*req, model_.tokenizer, model_.limits));
}

grpc::ServerUnaryReactor* InferenceService::Tokenize(grpc::CallbackServerContext* ctx,
                                                     const v1::TokenizeRequest* req,
                                                     v1::TokenizeResponse* resp) {
  Status st = CheckServing(*ctx);
  if (!st.ok()) return Reply(ctx, st);
  if (!model_.tokenizer) {
    return Reply(ctx, FailedPreconditionError(
                          "this model has no tokenizer (no tokenizer.json in the checkpoint)"));
  }
  std::string text;
  bool allow_special = req->allow_special();
  if (req->has_chat()) {
    StatusOr<std::string> rendered = RenderChat(req->chat(), model_.tokenizer);
    if (!rendered.ok()) return Reply(ctx, rendered.status());
    text = *rendered;
    allow_special = true;
  } else {
    text = req->text();
  }
  for (int32_t id : model_.tokenizer->Encode(text, allow_special)) resp->add_token_ids(id);
  resp->set_text(text);
  return Reply(ctx, OkStatus());
}

void FillModelInfo(const ServingModel& model, uint32_t context_length, v1::ModelInfo* info) {
  const Backend& b = model.engine->backend();
  const ModelConfig& c = b.config();
  info->set_model_path(model.model_path);
  info->set_model_type(c.model_type);
  info->set_num_layers(c.num_layers);
  info->set_hidden_size(c.hidden_size);
  info->set_intermediate_size(c.intermediate_size);
  info->set_num_attention_heads(c.num_q_heads);
  info->set_num_key_value_heads(c.num_kv_heads);
  info->set_head_dim(c.head_dim);
  info->set_vocab_size(c.vocab_size);
  info->set_max_model_len(model.engine->max_model_len());
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
  const BackendInfo bi = b.info();
  info->set_backend(bi.name);
  info->set_device(bi.device);
  info->set_kv_block_size(bi.kv_block_size);
  info->set_kv_num_blocks(bi.kv_num_blocks);
  info->set_kv_bytes_per_block(bi.kv_bytes_per_block);
  info->set_weights_bytes(bi.weights_bytes);
  info->set_kv_pool_bytes(bi.kv_pool_bytes);
  info->set_workspace_bytes(bi.workspace_bytes);
  const int64_t heads = static_cast<int64_t>(c.num_layers) * c.num_kv_heads;
  info->set_kv_capacity_tokens(static_cast<int64_t>(bi.kv_num_blocks) * bi.kv_block_size / heads);
  for (int32_t id : model.eos_token_ids) info->add_eos_token_ids(id);
  info->set_version(DMS_VERSION);

  // Admitted-stream capacity at a context length: each (layer, KV head)
  // retains about min(T, W+1) + (T - W - 1) / r entries, r the LIVE
  // compression ratio of the traffic so far (1 before any: dense, safe).
  const EngineStats st = model.engine->Stats();
  if (st.device_memory.available) {
    info->set_device_memory_used_bytes(st.device_memory.used);
    info->set_device_memory_total_bytes(st.device_memory.total);
  }
  int64_t logical = 0, retained = 0;
  for (size_t l = 0; l < st.retained_per_layer.size(); ++l) {
    logical += st.logical_per_layer[l];
    retained += st.retained_per_layer[l];
  }
  double ratio = retained > 0 ? static_cast<double>(logical) / retained : 1.0;
  if (!c.dms.enabled || c.dms.disable_eviction) ratio = 1.0;
  info->set_measured_compression_ratio(ratio);
  const int64_t t = context_length > 0 ? context_length : model.engine->max_model_len();
  info->set_capacity_context_length(static_cast<uint32_t>(t));
  const int64_t w1 = c.dms.enabled ? c.dms.window_size + 1 : t;
  const double per_head = std::min<int64_t>(t, w1) + std::max<int64_t>(0, t - w1) / ratio;
  const int64_t blocks_per_head = static_cast<int64_t>(std::ceil(per_head / bi.kv_block_size));
  const int64_t per_stream = std::max<int64_t>(1, blocks_per_head * heads);
  info->set_estimated_max_streams(bi.kv_num_blocks / per_stream);
}

grpc::ServerUnaryReactor* InferenceService::GetModelInfo(grpc::CallbackServerContext* ctx,
                                                         const v1::GetModelInfoRequest* req,
                                                         v1::ModelInfo* resp) {
  Status st = CheckServing(*ctx);
  if (!st.ok()) return Reply(ctx, st);
  FillModelInfo(model_, req->context_length(), resp);
  return Reply(ctx, OkStatus());
}

grpc::ServerUnaryReactor* InferenceService::GetServerStatus(grpc::CallbackServerContext* ctx,
                                                            const v1::GetServerStatusRequest* req,
                                                            v1::ServerStatus* resp) {
  Status auth = auth_->Authorize(*ctx);
  if (!auth.ok()) return Reply(ctx, auth);
  resp->set_ready(ready() && !draining_.load());
  resp->set_draining(draining_.load());
  if (ready()) {
    const EngineStats st = model_.engine->Stats();
    resp->set_requests_running(st.running);
    resp->set_requests_waiting(st.waiting);
    resp->set_kv_blocks_total(st.kv.num_blocks);
    resp->set_kv_blocks_used(st.kv.blocks_used);
    resp->set_kv_blocks_free(st.kv.blocks_free);
    resp->set_kv_logical_tokens(st.kv.logical_tokens);
    resp->set_kv_retained_tokens(st.kv.retained_tokens);
    resp->set_preemptions(st.preemptions);
    resp->set_steps(st.steps);
    resp->set_generated_tokens(st.tokens_generated);
  }
  return Reply(ctx, OkStatus());
}

}  // namespace dms::server
