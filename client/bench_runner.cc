#include "client/bench_runner.h"

#include <grpcpp/support/client_callback.h>

#include <optional>

#include "client/arrivals.h"
#include "client/client_util.h"

namespace dms::client {

std::string LoadSpec::Label() const {
  if (mode == Mode::kConcurrency) return Format("concurrency=%d", concurrency);
  if (!std::isfinite(rate)) return "rate=inf";
  return Format("rate=%g/s", rate);
}

// One request's stream; deletes itself when done.
class BenchStream : public grpc::ClientReadReactor<dms::v1::GenerateResponse> {
 public:
  BenchStream(BenchRunner* owner, size_t record_index, Clock::time_point run_start)
      : owner_(owner), record_index_(record_index), recorder_(run_start, /*keep_text=*/false) {}

  void Start(const Connection& connection, const BenchPrompt& prompt, const RequestTemplate& t,
             const std::string& request_id) {
    connection.Prepare(&context_, t.timeout_s);
    if (prompt.kind == BenchPrompt::Kind::kChat) {
      ToChatRequest(prompt, &chat_);
      chat_.set_request_id(request_id);
      *chat_.mutable_sampling() = t.sampling;
      chat_.set_ignore_eos(t.ignore_eos);
      ApplyKvPolicy(t.kv, &chat_);
      connection.stub()->async()->Chat(&context_, &chat_, this);
    } else {
      ToGenerateRequest(prompt, &generate_);
      generate_.set_request_id(request_id);
      *generate_.mutable_sampling() = t.sampling;
      generate_.set_ignore_eos(t.ignore_eos);
      ApplyKvPolicy(t.kv, &generate_);
      connection.stub()->async()->Generate(&context_, &generate_, this);
    }
    StartRead(&message_);
    recorder_.OnSend(Clock::now());
    StartCall();
  }

  void Cancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    recorder_.OnMessage(message_, Clock::now());
    StartRead(&message_);
  }

  void OnDone(const grpc::Status& status) override {
    owner_->OnStreamDone(this, record_index_, recorder_.Finish(status));
    delete this;
  }

 private:
  BenchRunner* owner_;
  size_t record_index_;
  StreamRecorder recorder_;
  grpc::ClientContext context_;
  dms::v1::GenerateRequest generate_;
  dms::v1::ChatRequest chat_;
  dms::v1::GenerateResponse message_;
};

BenchRunner::BenchRunner(const Connection& connection, const std::vector<BenchPrompt>& prompts,
                         RequestTemplate request)
    : connection_(connection), prompts_(prompts), request_(std::move(request)) {}

BenchRunner::~BenchRunner() {
  Stop();
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return active_.empty(); });
}

RunProgress BenchRunner::progress() const {
  std::lock_guard<std::mutex> lock(mu_);
  return progress_;
}

void BenchRunner::Stop() {
  stop_ = true;
  std::lock_guard<std::mutex> lock(mu_);
  for (BenchStream* s : active_) s->Cancel();
  cv_.notify_all();
}

void BenchRunner::Launch(size_t record_index, const BenchPrompt& prompt, int64_t sequence) {
  auto* stream = new BenchStream(this, record_index, run_start_);
  {
    std::lock_guard<std::mutex> lock(mu_);
    active_.insert(stream);
    ++progress_.launched;
    ++progress_.in_flight;
  }
  stream->Start(connection_, prompt, request_,
                Format("%s-%lld-%lld", request_.id_prefix.c_str(), static_cast<long long>(run_number_),
                       static_cast<long long>(sequence)));
}

void BenchRunner::OnStreamDone(BenchStream* stream, size_t record_index, RequestRecord record) {
  std::lock_guard<std::mutex> lock(mu_);
  active_.erase(stream);
  --progress_.in_flight;
  if (record.ok) {
    ++progress_.completed;
  } else {
    ++progress_.failed;
  }
  progress_.output_tokens += record.output_tokens;
  last_done_ = Clock::now();
  records_[record_index] = std::move(record);
  cv_.notify_all();
}

StatusOr<RunResult> BenchRunner::Run(const LoadSpec& spec, size_t* next_prompt) {
  if (prompts_.empty()) return InvalidArgumentError("bench: no prompts to send");
  if (spec.num_requests <= 0 && spec.duration_s <= 0) {
    return InvalidArgumentError("bench: give --num-requests or --duration (or both)");
  }
  if (spec.mode == LoadSpec::Mode::kConcurrency && spec.concurrency < 1) {
    return InvalidArgumentError(Format("--concurrency: expected >= 1, found %d", spec.concurrency));
  }
  std::optional<ArrivalProcess> arrivals;
  if (spec.mode == LoadSpec::Mode::kRate) {
    DMS_ASSIGN_OR_RETURN(ArrivalProcess a, ArrivalProcess::Create(spec.rate, spec.burstiness, spec.seed));
    arrivals.emplace(std::move(a));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    records_.clear();
    progress_ = RunProgress();
    run_start_ = Clock::now();
    last_done_ = run_start_;
  }
  ++run_number_;
  const Clock::time_point start = run_start_;
  const Clock::time_point end_by = start + std::chrono::duration_cast<Clock::duration>(
                                               std::chrono::duration<double>(spec.duration_s));
  Clock::time_point next_arrival = start;
  int64_t launched = 0;
  const int cap = spec.mode == LoadSpec::Mode::kConcurrency ? spec.concurrency : spec.max_concurrency;
  while (!stop_) {
    if (spec.num_requests > 0 && launched >= spec.num_requests) break;
    std::unique_lock<std::mutex> lock(mu_);
    if (arrivals) {
      next_arrival += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(arrivals->NextGap()));
      if (spec.duration_s > 0 && next_arrival >= end_by) break;
      cv_.wait_until(lock, next_arrival, [this] { return stop_.load(); });
    }
    // Closed loop (and the optional open-loop cap): wait for a free slot.
    auto slot_free = [&] { return stop_ || cap <= 0 || progress_.in_flight < cap; };
    if (spec.duration_s > 0) {
      if (!cv_.wait_until(lock, end_by, slot_free)) break;
      if (Clock::now() >= end_by) break;
    } else {
      cv_.wait(lock, slot_free);
    }
    if (stop_) break;
    const size_t index = records_.size();
    records_.emplace_back();
    lock.unlock();
    Launch(index, prompts_[*next_prompt % prompts_.size()], launched);
    ++*next_prompt;
    ++launched;
  }
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return active_.empty(); });
  RunResult result;
  result.records = std::move(records_);
  records_.clear();
  result.duration_s = std::chrono::duration<double>(last_done_ - start).count();
  result.interrupted = stop_;
  return result;
}

}  // namespace dms::client
