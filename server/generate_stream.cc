#include "server/generate_stream.h"

#include <spdlog/spdlog.h>

#include <optional>

#include "server/logging.h"
#include "server/status_mapping.h"
#include "server/wire.h"

namespace dms::server {

struct GenerateStream::Shared {
  // Recursive: gRPC may run OnWriteDone inline from StartWrite.
  std::recursive_mutex mu;
  GenerateStream* reactor = nullptr;  // null once OnDone ran
  std::string request_id;
  std::optional<RequestHandle> handle;     // set once the engine accepted the request
  std::deque<v1::GenerateResponse> queue;  // front is being written when writing
  bool writing = false;
  bool final_queued = false;   // the last response is in the queue
  bool finished = false;       // Finish() called
  grpc::Status final_status;
  ServerMetrics* metrics = nullptr;
  Clock::time_point last_delta{};
};

class GenerateStream::Sink : public RequestSink {
 public:
  explicit Sink(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

  void OnDelta(const TokenDelta& d) override {
    const Clock::time_point now = Clock::now();
    std::lock_guard<std::recursive_mutex> lock(shared_->mu);
    if (shared_->metrics && shared_->last_delta != Clock::time_point{}) {
      shared_->metrics->ObserveInterToken(std::chrono::duration<double>(now - shared_->last_delta).count());
    }
    shared_->last_delta = now;
    // Merge into the last queued response if it is not being written yet.
    const bool can_merge = shared_->queue.size() > (shared_->writing ? 1u : 0u);
    if (!can_merge) {
      shared_->queue.emplace_back();
      shared_->queue.back().set_request_id(shared_->request_id);
    }
    v1::GenerateResponse& r = shared_->queue.back();
    for (int32_t id : d.token_ids) r.add_token_ids(id);
    r.mutable_text()->append(d.text);
    for (const TokenLogprob& lp : d.logprobs) {
      v1::TokenLogprob* p = r.add_logprobs();
      p->set_token_id(lp.id);
      p->set_logprob(lp.logprob);
      for (const auto& [id, l] : lp.top) {
        v1::TopLogprob* t = p->add_top();
        t->set_token_id(id);
        t->set_logprob(l);
      }
    }
    if (shared_->reactor) shared_->reactor->PumpLocked();
  }

  void OnFinish(const RequestFinish& f) override {
    std::lock_guard<std::recursive_mutex> lock(shared_->mu);
    v1::GenerateResponse last;
    last.set_request_id(shared_->request_id);
    switch (f.reason) {
      case FinishReason::kStop: last.set_finish_reason(v1::FINISH_REASON_STOP); break;
      case FinishReason::kLength: last.set_finish_reason(v1::FINISH_REASON_LENGTH); break;
      case FinishReason::kStopString: last.set_finish_reason(v1::FINISH_REASON_STOP_STRING); break;
      case FinishReason::kCancelled: last.set_finish_reason(v1::FINISH_REASON_CANCELLED); break;
      case FinishReason::kError: last.set_finish_reason(v1::FINISH_REASON_ERROR); break;
    }
    last.mutable_usage()->set_prompt_tokens(f.prompt_tokens);
    last.mutable_usage()->set_completion_tokens(f.completion_tokens);
    last.mutable_usage()->set_cached_prompt_tokens(f.cached_prompt_tokens);
    last.mutable_kv()->set_logical_tokens(f.kv.logical_tokens);
    last.mutable_kv()->set_retained_tokens(f.kv.retained_tokens);
    last.mutable_kv()->set_compression_ratio(f.kv.compression_ratio);
    last.mutable_timing()->set_queue_ms(f.timing.queue_ms);
    last.mutable_timing()->set_ttft_ms(f.timing.ttft_ms);
    last.mutable_timing()->set_decode_tokens_per_s(f.timing.decode_tokens_per_s);
    last.mutable_timing()->set_e2e_ms(f.timing.e2e_ms);
    last.set_stop_matched(f.stop_matched);
    last.set_preemptions(f.preemptions);
    if (!f.error.ok()) last.set_error(f.error.message());
    shared_->queue.push_back(std::move(last));
    shared_->final_queued = true;
    // Errors end the stream with their status after the final message;
    // cancellations and deadlines with CANCELLED / DEADLINE_EXCEEDED.
    shared_->final_status = f.error.ok() ? grpc::Status::OK : ToGrpcStatus(f.error);
    spdlog::info("request id={} finish={} prompt_tokens={} completion_tokens={} ttft_ms={:.1f} "
                 "tokens_per_s={:.1f} kv_ratio={:.2f} preemptions={}",
                 LogEscape(shared_->request_id), FinishReasonName(f.reason), f.prompt_tokens,
                 f.completion_tokens, f.timing.ttft_ms, f.timing.decode_tokens_per_s,
                 f.kv.compression_ratio, f.preemptions);
    if (shared_->reactor) shared_->reactor->PumpLocked();
  }

 private:
  std::shared_ptr<Shared> shared_;
};

GenerateStream::GenerateStream(Engine* engine, std::shared_ptr<Shared> shared,
                               std::function<void()> on_done)
    : engine_(engine), shared_(std::move(shared)), on_done_(std::move(on_done)) {}

GenerateStream* GenerateStream::Start(grpc::CallbackServerContext* context, Engine* engine,
                                      GenerationRequest request, ServerMetrics* metrics,
                                      std::function<void()> on_done) {
  auto shared = std::make_shared<Shared>();
  shared->metrics = metrics;
  shared->request_id = request.request_id;  // the service fills in a unique one when empty
  auto* stream = new GenerateStream(engine, shared, std::move(on_done));
  shared->reactor = stream;
  // A gRPC deadline also bounds the work in the engine.
  const auto deadline = context->deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    request.deadline = Clock::now() + (deadline - std::chrono::system_clock::now());
  }
  const size_t prompt_len = request.prompt_tokens.size();
  const uint32_t max_tokens = request.max_tokens;
  // Held across Submit: the engine's first callback waits until the stream
  // knows its handle (a write failing at once must be able to cancel).
  std::lock_guard<std::recursive_mutex> lock(shared->mu);
  StatusOr<RequestHandle> handle =
      engine->Submit(std::move(request), std::make_shared<Sink>(shared));
  if (!handle.ok()) {
    const Status& st = handle.status();
    spdlog::info("request id={} refused: {}", LogEscape(shared->request_id), LogEscape(st.message(), 256));
    shared->finished = true;
    stream->Finish(ToGrpcStatus(st));
    return stream;
  }
  shared->handle = *handle;
  spdlog::debug("request accepted prompt_tokens={} max_tokens={}", prompt_len, max_tokens);
  return stream;
}

void GenerateStream::PumpLocked() {
  Shared& s = *shared_;
  if (s.finished || s.writing) return;
  if (!s.queue.empty()) {
    s.writing = true;
    SerializeMessage(s.queue.front(), &out_);
    StartWrite(&out_);
    return;
  }
  if (s.final_queued) {
    s.finished = true;
    Finish(s.final_status);
  }
}

void GenerateStream::OnWriteDone(bool ok) {
  std::lock_guard<std::recursive_mutex> lock(shared_->mu);
  shared_->writing = false;
  if (!shared_->queue.empty()) shared_->queue.pop_front();
  if (!ok) {
    // The client is gone: stop generating; finish once the engine confirms.
    if (shared_->handle) engine_->Cancel(*shared_->handle);
    shared_->queue.clear();
    if (!shared_->finished) {
      shared_->finished = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    }
    return;
  }
  PumpLocked();
}

void GenerateStream::OnCancel() {
  std::optional<RequestHandle> handle;
  {
    std::lock_guard<std::recursive_mutex> lock(shared_->mu);
    handle = shared_->handle;
  }
  // Frees the request's KV blocks within one engine step. The stream itself
  // finishes when the engine reports the cancellation (a refused request has
  // no handle and is finished already).
  if (handle) engine_->Cancel(*handle);
}

void GenerateStream::OnDone() {
  {
    std::lock_guard<std::recursive_mutex> lock(shared_->mu);
    shared_->reactor = nullptr;
  }
  if (on_done_) on_done_();
  delete this;
}

}  // namespace dms::server
