// EngineImpl: the engine behind Engine's pimpl (engine.h): one thread that
// owns the backend and runs every request to its end.
//
//   Submit()/Cancel() (any thread) --inbox--> engine thread:
//     loop: take new requests and cancels; expire deadlines;
//           plan = scheduler.Schedule(); backend.Forward(plan);
//           sample, detokenize, check stops; stream deltas to sinks.
//
// Nothing per token allocates on the host beyond the output it hands out;
// nothing waits on the device except to hand tokens out (the CPU backend is
// synchronous; the CUDA backend overlaps). Request validation happens in
// Submit, so a bad request is refused synchronously with one clear Status.
//
// Threading: Submit, Cancel, Stats and Stop are thread-safe. Sinks are called
// on the engine thread. Private to engine/runtime: front ends use engine.h.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/core/backend.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/request.h"
#include "engine/runtime/scheduler.h"
#include "engine/tokenizer/tokenizer.h"

namespace dms {

class EngineImpl {
 public:
  // tokenizer may be null (token-id requests only). The engine does not own
  // the observer.
  EngineImpl(std::unique_ptr<Backend> backend, std::shared_ptr<const Tokenizer> tokenizer,
         const EngineOptions& options, EngineObserver* observer = nullptr);
  ~EngineImpl();  // stops the thread; pending requests finish as cancelled

  // Validates and queues a request; returns the handle that cancels it.
  // Errors: INVALID_ARGUMENT (bad field, named), FAILED_PRECONDITION (text
  // asked but no tokenizer), RESOURCE_EXHAUSTED (queue full), ALREADY_EXISTS
  // (the owner has this request_id in flight), UNAVAILABLE (stopping).
  StatusOr<RequestHandle> Submit(GenerationRequest request, std::shared_ptr<RequestSink> sink);
  // Cancels the request Submit returned `handle` for (no-op once it is done);
  // its sink gets finish_reason cancelled. Thread-safe, returns immediately.
  void Cancel(RequestHandle handle);

  // Stops accepting work; finishes in-flight requests as cancelled; joins.
  void Stop();

  EngineStats Stats() const;

 private:
  struct Inbox {
    std::vector<std::unique_ptr<Sequence>> added;
    std::vector<RequestHandle> cancelled;
  };

  void Loop();
  void Step();
  void Finish(Sequence* seq, FinishReason reason, Status error = OkStatus(),
              std::string stop_matched = "");
  void HandleCancelsAndDeadlines(const std::vector<RequestHandle>& cancelled);
  // The chunk that forwards `p`, sampling on the backend when it can.
  StatusOr<ForwardChunk> MakeChunk(const PlannedChunk& p, RowSampling* sampling);
  // Samples for the planned chunks that asked for logits, except `skip`
  // (failed this step; their rows are passed over).
  void ProcessLogits(const std::vector<PlannedChunk>& plan, const ForwardResult& step,
                     const std::unordered_set<const Sequence*>& skip);
  // Training-free KV policies: the capture before a sequence's first chunk,
  // the pruning once its prompt is in the cache. Errors fail that request.
  Status StartKvCapture(Sequence* seq);
  Status RunPendingKvPolicy(Sequence* seq);
  void PublishStats(double step_ms, int step_tokens, int step_seqs);
  // Sessions (engine thread).
  void AttachSession(Sequence* seq);
  bool KeepSession(Sequence* seq);
  bool EvictOneSession();
  void ExpireSessions();
  int SessionBlocks(SeqId kv) const;

  std::unique_ptr<Backend> backend_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  EngineOptions options_;
  EngineObserver* observer_;
  int max_model_len_ = 0;
  bool backend_dms_eviction_ = false;  // BackendInfo, read once
  bool backend_kv_policies_ = false;
  bool backend_sampling_ = false;  // BackendInfo::sampling
  std::string backend_name_;
  Scheduler scheduler_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Inbox inbox_;                                     // guarded by mu_
  // Requests submitted and not finished, guarded by mu_: the owner-scoped
  // request ids (InFlightKey) and the handles.
  std::unordered_set<std::string> in_flight_ids_;
  std::unordered_set<RequestHandle> in_flight_handles_;
  bool stopping_ = false;                           // guarded by mu_
  uint64_t next_arrival_ = 0;                       // guarded by mu_
  EngineStats stats_;                               // guarded by mu_
  EngineStats scratch_stats_;                       // engine thread: the next stats_

  // Engine-thread state.
  ForwardResult step_out_;  // reused: no allocation per step
  std::vector<ForwardChunk> chunks_;
  std::vector<RowSampling> row_sampling_;  // [plan size]; chunks_ point into it
  int64_t steps_ = 0, tokens_generated_ = 0, prompt_tokens_ = 0;
  DeviceMemoryInfo last_device_memory_;
  struct Session {
    SeqId kv = -1;
    std::vector<int32_t> tokens;  // exactly what the cache holds
    Clock::time_point last_used;
  };
  std::unordered_map<std::string, Session> sessions_;  // by OwnerScopedKey(owner, session_id)
  int64_t session_hits_ = 0, session_misses_ = 0, session_evictions_ = 0;

  std::thread thread_;
};

}  // namespace dms
