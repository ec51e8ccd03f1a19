// One streamed Generate or Chat call, read synchronously on the calling
// thread. Ctrl-C cancels the stream (not the program) while it runs.
#pragma once

#include <functional>

#include "client/connection.h"
#include "client/request_record.h"

namespace dms::client {

struct StreamOutcome {
  RequestRecord record;                  // record.ok, record.error, timings
  dms::v1::GenerateResponse last;        // the final message (finish, usage, kv, timing)
  std::vector<int32_t> token_ids;        // every generated id
  std::vector<dms::v1::TokenLogprob> logprobs;
  bool interrupted = false;              // Ctrl-C cancelled it
};

// Called for each message with the record so far (send time, TTFT, counts).
using MessageCallback = std::function<void(const dms::v1::GenerateResponse&, const RequestRecord&)>;

StreamOutcome RunGenerateStream(const Connection& connection, const dms::v1::GenerateRequest& request,
                                double timeout_s, const MessageCallback& on_message);
StreamOutcome RunChatStream(const Connection& connection, const dms::v1::ChatRequest& request,
                            double timeout_s, const MessageCallback& on_message);

}  // namespace dms::client
