// What the client measures about one streamed request, on its own clock:
// the send time and the arrival of every message, beside the timings the
// server reports in the stream's last message.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <grpcpp/support/status.h>

#include "dms/v1/inference.pb.h"

namespace dms::client {

using Clock = std::chrono::steady_clock;

struct RequestRecord {
  bool ok = false;
  std::string error;            // one line, when !ok
  std::string finish_reason;    // "stop", "length", "stop_string", "cancelled", "error"
  double send_s = 0;            // client clock at send, seconds since the run began
  double ttft_s = NAN;          // first message carrying tokens - send
  double e2e_s = NAN;           // last message - send
  // Gaps between tokens after the first: a message carrying k tokens adds k
  // samples of gap/k, so sum(itl_s) is the decode time and size() = output - 1.
  std::vector<double> itl_s;
  int64_t output_tokens = 0;    // token ids received
  int64_t prompt_tokens = 0;    // usage.prompt_tokens (server)
  int64_t server_completion_tokens = 0;
  int64_t messages = 0;
  // Server-reported (NaN when absent).
  double server_queue_ms = NAN;
  double server_ttft_ms = NAN;
  double server_e2e_ms = NAN;
  double server_decode_tokens_per_s = NAN;
  double compression_ratio = NAN;
  uint32_t preemptions = 0;
  std::string text;             // generated text, when the recorder keeps it

  // Time per output token after the first: (e2e - ttft) / (output - 1);
  // NaN below two tokens.
  double Tpot() const {
    return output_tokens > 1 && ok ? (e2e_s - ttft_s) / static_cast<double>(output_tokens - 1) : NAN;
  }
};

const char* FinishReasonName(dms::v1::FinishReason reason);

// Builds a RequestRecord from the events of one stream. Not thread-safe: a
// stream's messages arrive one at a time.
class StreamRecorder {
 public:
  StreamRecorder(Clock::time_point run_start, bool keep_text)
      : run_start_(run_start), keep_text_(keep_text) {}

  void OnSend(Clock::time_point now);
  void OnMessage(const dms::v1::GenerateResponse& message, Clock::time_point now);
  // The stream's final status; the record is complete afterwards.
  RequestRecord Finish(const grpc::Status& status);

  const RequestRecord& record() const { return record_; }
  const dms::v1::GenerateResponse& last_message() const { return last_; }

 private:
  Clock::time_point run_start_;
  bool keep_text_;
  Clock::time_point send_;
  Clock::time_point last_token_time_;
  bool have_tokens_ = false;
  RequestRecord record_;
  dms::v1::GenerateResponse last_;
};

}  // namespace dms::client
