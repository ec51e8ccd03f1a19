#include "client/request_record.h"

#include "client/client_util.h"

namespace dms::client {
namespace {

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace

const char* FinishReasonName(dms::v1::FinishReason reason) {
  switch (reason) {
    case dms::v1::FINISH_REASON_STOP: return "stop";
    case dms::v1::FINISH_REASON_LENGTH: return "length";
    case dms::v1::FINISH_REASON_STOP_STRING: return "stop_string";
    case dms::v1::FINISH_REASON_CANCELLED: return "cancelled";
    case dms::v1::FINISH_REASON_ERROR: return "error";
    default: return "";
  }
}

void StreamRecorder::OnSend(Clock::time_point now) {
  send_ = now;
  record_.send_s = Seconds(now - run_start_);
}

void StreamRecorder::OnMessage(const dms::v1::GenerateResponse& m, Clock::time_point now) {
  ++record_.messages;
  record_.e2e_s = Seconds(now - send_);
  const int k = m.token_ids_size();
  if (k > 0) {
    if (!have_tokens_) {
      record_.ttft_s = record_.e2e_s;
      record_.itl_s.insert(record_.itl_s.end(), static_cast<size_t>(k - 1), 0.0);
      have_tokens_ = true;
    } else {
      const double gap = Seconds(now - last_token_time_) / k;
      record_.itl_s.insert(record_.itl_s.end(), static_cast<size_t>(k), gap);
    }
    last_token_time_ = now;
    record_.output_tokens += k;
  }
  if (keep_text_) record_.text += m.text();
  if (m.finish_reason() != dms::v1::FINISH_REASON_UNSPECIFIED) {
    last_ = m;
    record_.finish_reason = FinishReasonName(m.finish_reason());
    if (m.has_usage()) {
      record_.prompt_tokens = m.usage().prompt_tokens();
      record_.server_completion_tokens = m.usage().completion_tokens();
    }
    if (m.has_timing()) {
      record_.server_queue_ms = m.timing().queue_ms();
      record_.server_ttft_ms = m.timing().ttft_ms();
      record_.server_e2e_ms = m.timing().e2e_ms();
      record_.server_decode_tokens_per_s = m.timing().decode_tokens_per_s();
    }
    if (m.has_kv()) record_.compression_ratio = m.kv().compression_ratio();
    record_.preemptions = m.preemptions();
    if (m.finish_reason() == dms::v1::FINISH_REASON_ERROR) {
      record_.error = OneLine("server error: " + m.error());
    }
  }
}

RequestRecord StreamRecorder::Finish(const grpc::Status& status) {
  if (!status.ok()) {
    record_.ok = false;
    record_.error = FromGrpc(status, "stream").message();
  } else if (!record_.error.empty()) {
    record_.ok = false;
  } else if (record_.finish_reason.empty()) {
    record_.ok = false;
    record_.error = "stream: ended without a final message (finish_reason unset)";
  } else if (record_.finish_reason == "cancelled") {
    record_.ok = false;
    record_.error = "stream: cancelled";
  } else {
    record_.ok = true;
  }
  if (record_.ok && record_.output_tokens == 0) record_.ttft_s = NAN;  // nothing generated
  return record_;
}

}  // namespace dms::client
