// An in-process stand-in for dms-server used by the client tests: streams
// one token per few milliseconds, records what it was asked (concurrency,
// metadata, chat history), and can require a bearer token or TLS. The real
// server's behaviour is tested in client_e2e_test.cc.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dms/v1/inference.grpc.pb.h"

namespace dms::testing {

class FakeInference final : public dms::v1::Inference::Service {
 public:
  std::string required_token;  // "" accepts any caller
  int token_delay_ms = 2;

  std::atomic<int> active{0}, max_active{0}, generate_calls{0}, chat_calls{0}, cancelled{0};
  std::atomic<int64_t> output_tokens{0};
  std::mutex mu;
  std::vector<dms::v1::ChatRequest> chats;  // guarded by mu

  grpc::Status Generate(grpc::ServerContext* ctx, const dms::v1::GenerateRequest* req,
                        grpc::ServerWriter<dms::v1::GenerateResponse>* writer) override {
    if (grpc::Status s = CheckAuth(ctx); !s.ok()) return s;
    ++generate_calls;
    const int prompt = req->prompt_token_ids_size() > 0 ? req->prompt_token_ids_size() : 5;
    return Stream(ctx, req->max_tokens() ? req->max_tokens() : 16, prompt, "tok", writer);
  }

  grpc::Status Chat(grpc::ServerContext* ctx, const dms::v1::ChatRequest* req,
                    grpc::ServerWriter<dms::v1::GenerateResponse>* writer) override {
    if (grpc::Status s = CheckAuth(ctx); !s.ok()) return s;
    int n = ++chat_calls;
    {
      std::lock_guard<std::mutex> lock(mu);
      chats.push_back(*req);
    }
    return Stream(ctx, req->max_tokens() ? req->max_tokens() : 4, 10 * req->messages_size(),
                  "reply" + std::to_string(n) + "-", writer);
  }

  grpc::Status Tokenize(grpc::ServerContext* ctx, const dms::v1::TokenizeRequest* req,
                        dms::v1::TokenizeResponse* resp) override {
    if (grpc::Status s = CheckAuth(ctx); !s.ok()) return s;
    const std::string text = req->has_chat() ? "chat" : req->text();
    for (size_t i = 0; i < text.size(); ++i) resp->add_token_ids(static_cast<unsigned char>(text[i]));
    resp->set_text(text);
    return grpc::Status::OK;
  }

  grpc::Status GetModelInfo(grpc::ServerContext* ctx, const dms::v1::GetModelInfoRequest*,
                            dms::v1::ModelInfo* info) override {
    if (grpc::Status s = CheckAuth(ctx); !s.ok()) return s;
    info->set_model_path("/fake");
    info->set_model_type("qwen3");
    info->set_vocab_size(1000);
    info->set_max_model_len(4096);
    info->set_backend("fake");
    return grpc::Status::OK;
  }

  grpc::Status GetServerStatus(grpc::ServerContext* ctx, const dms::v1::GetServerStatusRequest*,
                               dms::v1::ServerStatus* status) override {
    if (grpc::Status s = CheckAuth(ctx); !s.ok()) return s;
    status->set_ready(true);
    return grpc::Status::OK;
  }

 private:
  grpc::Status CheckAuth(grpc::ServerContext* ctx) const {
    if (required_token.empty()) return grpc::Status::OK;
    const auto& md = ctx->client_metadata();
    const auto it = md.find("authorization");
    if (it == md.end() || std::string(it->second.data(), it->second.size()) != "Bearer " + required_token) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "missing or wrong bearer token");
    }
    return grpc::Status::OK;
  }

  grpc::Status Stream(grpc::ServerContext* ctx, uint32_t tokens, int prompt_tokens, const std::string& text,
                      grpc::ServerWriter<dms::v1::GenerateResponse>* writer) {
    const int now = ++active;
    for (int m = max_active.load(); now > m && !max_active.compare_exchange_weak(m, now);) {
    }
    const auto start = std::chrono::steady_clock::now();
    grpc::Status result = grpc::Status::OK;
    for (uint32_t i = 0; i < tokens; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(token_delay_ms));
      if (ctx->IsCancelled()) {
        ++cancelled;
        result = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
        break;
      }
      dms::v1::GenerateResponse m;
      m.add_token_ids(static_cast<int32_t>(i));
      m.set_text(i == 0 ? text : "");
      if (i + 1 == tokens) {
        m.set_finish_reason(dms::v1::FINISH_REASON_LENGTH);
        m.mutable_usage()->set_prompt_tokens(prompt_tokens);
        m.mutable_usage()->set_completion_tokens(tokens);
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
        m.mutable_timing()->set_ttft_ms(token_delay_ms);
        m.mutable_timing()->set_e2e_ms(ms);
        m.mutable_timing()->set_decode_tokens_per_s(1000.0 / token_delay_ms);
        m.mutable_kv()->set_compression_ratio(1.0);
      }
      writer->Write(m);
      ++output_tokens;
    }
    --active;
    return result;
  }
};

// Runs a FakeInference on 127.0.0.1 (a free port), plain or with TLS.
class FakeServer {
 public:
  explicit FakeServer(std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials()) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", creds, &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~FakeServer() { server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2)); }

  FakeInference& service() { return service_; }
  std::string target() const { return "127.0.0.1:" + std::to_string(port_); }
  bool ok() const { return server_ != nullptr && port_ > 0; }

 private:
  FakeInference service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace dms::testing
