// dms.v1.Inference on the gRPC callback API. gRPC threads only validate,
// enqueue and stream; the engine thread does the work.
//
// Before the model is loaded (and while draining on SIGTERM) inference RPCs
// answer UNAVAILABLE; GetServerStatus always answers. Every RPC is
// authorized first, then its request is parsed from the raw bytes
// (server/wire.h), so a malformed message gets INVALID_ARGUMENT naming the
// field. Request ids and sessions belong to the authorized caller
// (RequestAuthorizer::Authorize).
// Threading: all methods are called concurrently by gRPC threads.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "dms/v1/inference.grpc.pb.h"
#include "engine/runtime/engine.h"
#include "server/auth.h"
#include "server/metrics.h"
#include "server/request_builder.h"

namespace dms::server {

// What the service serves; set once the model is loaded and warmed up.
struct ServingModel {
  Engine* engine = nullptr;
  const Tokenizer* tokenizer = nullptr;
  std::string model_path;
  std::vector<int32_t> eos_token_ids;
  ModelLimits limits;  // vocab and context filled from the engine by SetModel
};

using InferenceServiceBase = v1::Inference::WithRawCallbackMethod_Generate<
    v1::Inference::WithRawCallbackMethod_Chat<v1::Inference::WithRawCallbackMethod_Tokenize<
        v1::Inference::WithRawCallbackMethod_GetModelInfo<
            v1::Inference::WithRawCallbackMethod_GetServerStatus<v1::Inference::Service>>>>>;

class InferenceService final : public InferenceServiceBase {
 public:
  // Neither is owned; auth is never null (it may allow everything).
  InferenceService(ServerMetrics* metrics, RequestAuthorizer* auth);

  // Publishes the model (release store: RPCs then see a complete struct).
  void SetModel(const ServingModel& model);
  void SetDraining() { draining_.store(true); }
  bool ready() const { return model_ready_.load(std::memory_order_acquire); }

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Generate(grpc::CallbackServerContext* ctx,
                                                       const grpc::ByteBuffer* req) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Chat(grpc::CallbackServerContext* ctx,
                                                   const grpc::ByteBuffer* req) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                     grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                         grpc::ByteBuffer* resp) override;
  grpc::ServerUnaryReactor* GetServerStatus(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* req,
                                            grpc::ByteBuffer* resp) override;

 private:
  // The caller's identity when inference RPCs may run now for it:
  // UNAVAILABLE while loading or draining, else the authorizer's verdict.
  StatusOr<std::string> CheckServing(const grpc::CallbackServerContext& ctx, std::string_view rpc) const;
  // Authorizes, parses and builds a Generate or Chat request, then streams it.
  template <typename Proto>
  grpc::ServerWriteReactor<grpc::ByteBuffer>* OpenStream(grpc::CallbackServerContext* ctx,
                                                         const grpc::ByteBuffer& bytes, const char* rpc);
  grpc::ServerWriteReactor<grpc::ByteBuffer>* StartStream(grpc::CallbackServerContext* ctx,
                                                          const std::string& client_id,
                                                          StatusOr<GenerationRequest> request);
  StatusOr<v1::TokenizeResponse> TokenizeText(const v1::TokenizeRequest& req) const;
  std::string NewRequestId();

  ServerMetrics* metrics_;
  RequestAuthorizer* auth_;
  ServingModel model_;
  std::atomic<bool> model_ready_{false};
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> next_id_{0};
  const uint64_t id_key_;  // random per process: server-made ids are not guessable
};

// Fills ModelInfo from the engine (also used by `dms-server --print-info`).
void FillModelInfo(const ServingModel& model, uint32_t context_length, v1::ModelInfo* info);

}  // namespace dms::server
