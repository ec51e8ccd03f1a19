// One Generate/Chat stream: a gRPC callback-API write reactor fed by the
// engine thread through a RequestSink.
//
//   engine thread: OnDelta/OnFinish -> queue responses (merging deltas that
//                  pile up while a write is in flight) -> StartWrite
//   gRPC thread:   OnWriteDone -> next write, or Finish(status) after the last
//                  OnCancel (client cancel, disconnect, deadline) -> Engine::Cancel
//                  of this stream's own handle (never another stream's)
//                  OnDone -> the reactor is deleted; the sink outlives it safely
//
// Threading: the queue is guarded by a mutex shared by both sides. The sink
// holds a shared_ptr to that state, never to the reactor's memory after OnDone.
#pragma once

#include <grpcpp/grpcpp.h>

#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "dms/v1/inference.pb.h"
#include "engine/runtime/engine.h"
#include "server/metrics.h"

namespace dms::server {

class GenerateStream : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  // Submits `request` to `engine` and streams the result. Refusals (queue
  // full, bad request) finish the stream at once with the mapped status.
  // on_done runs once when gRPC is done with the stream (e.g. to release a
  // per-peer stream slot).
  static GenerateStream* Start(grpc::CallbackServerContext* context, Engine* engine,
                               GenerationRequest request, ServerMetrics* metrics,
                               std::function<void()> on_done);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  struct Shared;
  class Sink;

  GenerateStream(Engine* engine, std::shared_ptr<Shared> shared, std::function<void()> on_done);
  // Starts the next write or the Finish; call with shared_->mu held.
  void PumpLocked();

  Engine* engine_;
  std::shared_ptr<Shared> shared_;
  grpc::ByteBuffer out_;  // the queue's front, serialized while it is written
  std::function<void()> on_done_;
};

}  // namespace dms::server
