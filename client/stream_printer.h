// Prints a streamed reply as it arrives. On a terminal, a dim live status
// ("42 tok · 35.1 tok/s") follows the cursor and is erased before the next
// text; the summary line goes to stderr at the end.
#pragma once

#include <cstdint>
#include <string>

#include "client/stream_call.h"

namespace dms::client {

class StreamPrinter {
 public:
  // live: draw the status line (only when stdout is a terminal).
  explicit StreamPrinter(bool live);

  // Whether stdout and stderr are both terminals.
  static bool TerminalAttached();

  void OnMessage(const dms::v1::GenerateResponse& message, const RequestRecord& record);
  // Prints text that is not part of the stream (e.g. token ids).
  void Print(const std::string& text);
  // Erases the status and ends the line of text.
  void Finish();

 private:
  void EraseStatus();
  void Write(const std::string& text);

  bool live_;
  int width_ = 80;
  int column_ = 0;         // cursor column after the text written so far
  int status_len_ = 0;     // columns of the status now on screen
  bool wrote_text_ = false;
  bool at_line_start_ = true;
};

// "[12 prompt + 64 tokens in 1.23 s: TTFT 45 ms, 55.2 tok/s, decode 60.1 tok/s |
// server: queue 0.1 ms, TTFT 40 ms, decode 61.0 tok/s | KV 1.83x | finish length]"
std::string SummaryLine(const StreamOutcome& outcome);

}  // namespace dms::client
