// What the client measures per stream: TTFT from the send to the first
// message carrying tokens, ITL per token, E2E to the last message, and the
// server's timings from the final message.
#include "client/request_record.h"

#include <gtest/gtest.h>

namespace dms::client {
namespace {

using std::chrono::milliseconds;

dms::v1::GenerateResponse Tokens(int n) {
  dms::v1::GenerateResponse m;
  for (int i = 0; i < n; ++i) m.add_token_ids(100 + i);
  m.set_text(std::string(n, 'x'));
  return m;
}

TEST(StreamRecorderTest, TimingsFromMessageArrivals) {
  const Clock::time_point t0 = Clock::now();
  StreamRecorder rec(t0, /*keep_text=*/true);
  rec.OnSend(t0 + milliseconds(10));
  rec.OnMessage(dms::v1::GenerateResponse(), t0 + milliseconds(20));  // no tokens: not the first token
  rec.OnMessage(Tokens(1), t0 + milliseconds(110));                   // TTFT 100 ms
  rec.OnMessage(Tokens(1), t0 + milliseconds(130));                   // gap 20
  rec.OnMessage(Tokens(2), t0 + milliseconds(190));                   // gap 60 over 2 tokens
  dms::v1::GenerateResponse last = Tokens(1);
  last.set_finish_reason(dms::v1::FINISH_REASON_LENGTH);
  last.mutable_usage()->set_prompt_tokens(12);
  last.mutable_usage()->set_completion_tokens(5);
  last.mutable_timing()->set_ttft_ms(95);
  last.mutable_timing()->set_queue_ms(1.5);
  last.mutable_timing()->set_e2e_ms(205);
  last.mutable_timing()->set_decode_tokens_per_s(40);
  last.mutable_kv()->set_compression_ratio(2.5);
  rec.OnMessage(last, t0 + milliseconds(220));  // gap 30
  const RequestRecord r = rec.Finish(grpc::Status::OK);
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_NEAR(r.send_s, 0.010, 1e-9);
  EXPECT_NEAR(r.ttft_s, 0.100, 1e-9);
  EXPECT_NEAR(r.e2e_s, 0.210, 1e-9);
  EXPECT_EQ(r.output_tokens, 5);
  EXPECT_EQ(r.messages, 5);
  ASSERT_EQ(r.itl_s.size(), 4u);  // output - 1
  EXPECT_NEAR(r.itl_s[0], 0.020, 1e-9);
  EXPECT_NEAR(r.itl_s[1], 0.030, 1e-9);
  EXPECT_NEAR(r.itl_s[2], 0.030, 1e-9);
  EXPECT_NEAR(r.itl_s[3], 0.030, 1e-9);
  EXPECT_NEAR(r.Tpot(), (0.210 - 0.100) / 4, 1e-9);
  EXPECT_EQ(r.finish_reason, "length");
  EXPECT_EQ(r.prompt_tokens, 12);
  EXPECT_EQ(r.server_completion_tokens, 5);
  EXPECT_DOUBLE_EQ(r.server_ttft_ms, 95);
  EXPECT_DOUBLE_EQ(r.server_queue_ms, 1.5);
  EXPECT_DOUBLE_EQ(r.server_e2e_ms, 205);
  EXPECT_DOUBLE_EQ(r.compression_ratio, 2.5);
  EXPECT_EQ(r.text, "xxxxx");
}

TEST(StreamRecorderTest, SeveralTokensInTheFirstMessage) {
  const Clock::time_point t0 = Clock::now();
  StreamRecorder rec(t0, false);
  rec.OnSend(t0);
  dms::v1::GenerateResponse m = Tokens(3);
  m.set_finish_reason(dms::v1::FINISH_REASON_STOP);
  rec.OnMessage(m, t0 + milliseconds(50));
  const RequestRecord r = rec.Finish(grpc::Status::OK);
  ASSERT_TRUE(r.ok);
  EXPECT_NEAR(r.ttft_s, 0.05, 1e-9);
  EXPECT_EQ(r.itl_s, (std::vector<double>{0, 0}));  // arrived together
  EXPECT_TRUE(r.text.empty());                        // not kept
}

TEST(StreamRecorderTest, Failures) {
  const Clock::time_point t0 = Clock::now();
  {
    StreamRecorder rec(t0, false);
    rec.OnSend(t0);
    const RequestRecord r = rec.Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "connection refused"));
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "stream: UNAVAILABLE: connection refused");
  }
  {
    StreamRecorder rec(t0, false);
    rec.OnSend(t0);
    rec.OnMessage(Tokens(1), t0 + milliseconds(5));
    const RequestRecord r = rec.Finish(grpc::Status::OK);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "stream: ended without a final message (finish_reason unset)");
  }
  {
    StreamRecorder rec(t0, false);
    rec.OnSend(t0);
    dms::v1::GenerateResponse m;
    m.set_finish_reason(dms::v1::FINISH_REASON_ERROR);
    m.set_error("backend failed\nbadly");
    rec.OnMessage(m, t0 + milliseconds(5));
    const RequestRecord r = rec.Finish(grpc::Status::OK);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.error, "server error: backend failed badly");
  }
  {
    StreamRecorder rec(t0, false);
    rec.OnSend(t0);
    dms::v1::GenerateResponse m;
    m.set_finish_reason(dms::v1::FINISH_REASON_CANCELLED);
    rec.OnMessage(m, t0 + milliseconds(5));
    EXPECT_EQ(rec.Finish(grpc::Status::OK).error, "stream: cancelled");
  }
}

}  // namespace
}  // namespace dms::client
