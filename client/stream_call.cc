#include "client/stream_call.h"

#include "client/interrupt.h"

namespace dms::client {
namespace {

template <typename StartFn>
StreamOutcome RunStream(const Connection& connection, double timeout_s, const MessageCallback& on_message,
                        StartFn start) {
  StreamOutcome out;
  grpc::ClientContext context;
  connection.Prepare(&context, timeout_s);
  InterruptScope interrupt([&context] { context.TryCancel(); });
  const Clock::time_point t0 = Clock::now();
  StreamRecorder recorder(t0, /*keep_text=*/true);
  recorder.OnSend(t0);
  auto reader = start(&context);
  dms::v1::GenerateResponse message;
  while (reader->Read(&message)) {
    recorder.OnMessage(message, Clock::now());
    out.token_ids.insert(out.token_ids.end(), message.token_ids().begin(), message.token_ids().end());
    for (const auto& lp : message.logprobs()) out.logprobs.push_back(lp);
    if (on_message) on_message(message, recorder.record());
  }
  const grpc::Status status = reader->Finish();
  out.record = recorder.Finish(status);
  out.last = recorder.last_message();
  out.interrupted = interrupt.interrupted();
  return out;
}

}  // namespace

StreamOutcome RunGenerateStream(const Connection& connection, const dms::v1::GenerateRequest& request,
                                double timeout_s, const MessageCallback& on_message) {
  return RunStream(connection, timeout_s, on_message, [&](grpc::ClientContext* ctx) {
    return connection.stub()->Generate(ctx, request);
  });
}

StreamOutcome RunChatStream(const Connection& connection, const dms::v1::ChatRequest& request,
                            double timeout_s, const MessageCallback& on_message) {
  return RunStream(connection, timeout_s, on_message, [&](grpc::ClientContext* ctx) {
    return connection.stub()->Chat(ctx, request);
  });
}

}  // namespace dms::client
