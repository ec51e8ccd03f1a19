// dms.v1.Inference on the gRPC callback API. gRPC threads only validate,
// enqueue and stream; the engine thread does the work.
//
// Before the model is loaded (and while draining on SIGTERM) inference RPCs
// answer UNAVAILABLE; GetServerStatus always answers.
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

class InferenceService final : public v1::Inference::CallbackService {
 public:
  // Neither is owned; auth is never null (it may allow everything).
  InferenceService(ServerMetrics* metrics, RequestAuthorizer* auth) : metrics_(metrics), auth_(auth) {}

  // Publishes the model (release store: RPCs then see a complete struct).
  void SetModel(const ServingModel& model);
  void SetDraining() { draining_.store(true); }
  bool ready() const { return model_ready_.load(std::memory_order_acquire); }

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(grpc::CallbackServerContext* ctx,
                                                           const v1::GenerateRequest* req) override;
  grpc::ServerWriteReactor<v1::GenerateResponse>* Chat(grpc::CallbackServerContext* ctx,
                                                       const v1::ChatRequest* req) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* ctx, const v1::TokenizeRequest* req,
                                     v1::TokenizeResponse* resp) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* ctx,
                                         const v1::GetModelInfoRequest* req,
                                         v1::ModelInfo* resp) override;
  grpc::ServerUnaryReactor* GetServerStatus(grpc::CallbackServerContext* ctx,
                                            const v1::GetServerStatusRequest* req,
                                            v1::ServerStatus* resp) override;

 private:
  // OK when inference RPCs may run now for this caller: UNAVAILABLE while
  // loading or draining, else the authorizer's verdict.
  Status CheckServing(const grpc::CallbackServerContext& ctx) const;
  grpc::ServerWriteReactor<v1::GenerateResponse>* StartStream(grpc::CallbackServerContext* ctx,
                                                              const std::string& client_id,
                                                              StatusOr<GenerationRequest> request);
  std::string NewRequestId();

  ServerMetrics* metrics_;
  RequestAuthorizer* auth_;
  ServingModel model_;
  std::atomic<bool> model_ready_{false};
  std::atomic<bool> draining_{false};
  std::atomic<uint64_t> next_id_{0};
};

// Fills ModelInfo from the engine (also used by `dms-server --print-info`).
void FillModelInfo(const ServingModel& model, uint32_t context_length, v1::ModelInfo* info);

}  // namespace dms::server
