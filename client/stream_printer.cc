#include "client/stream_printer.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "client/client_util.h"

namespace dms::client {

StreamPrinter::StreamPrinter(bool live) : live_(live) {
  struct winsize ws {};
  if (live_ && ::ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) width_ = ws.ws_col;
}

bool StreamPrinter::TerminalAttached() { return ::isatty(STDOUT_FILENO) && ::isatty(STDERR_FILENO); }

void StreamPrinter::EraseStatus() {
  if (status_len_ == 0) return;
  std::fputs("\033[K", stdout);  // the cursor sits where the status began
  status_len_ = 0;
}

void StreamPrinter::Write(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  for (unsigned char c : text) {
    if (c == '\n' || c == '\r') {
      column_ = 0;
    } else if (c == '\t') {
      column_ = (column_ / 8 + 1) * 8;
    } else if ((c & 0xc0) != 0x80) {  // count code points, not continuation bytes
      ++column_;
    }
    if (column_ >= width_) column_ %= width_;
  }
  if (!text.empty()) {
    wrote_text_ = true;
    at_line_start_ = text.back() == '\n';
  }
}

void StreamPrinter::OnMessage(const dms::v1::GenerateResponse& m, const RequestRecord& r) {
  EraseStatus();
  Write(m.text());
  if (live_ && r.output_tokens > 0) {
    const double decode_s = r.e2e_s - r.ttft_s;
    const double rate = r.output_tokens > 1 && decode_s > 0 ? (r.output_tokens - 1) / decode_s : 0;
    const std::string status = Format("  [%lld tok, %.1f tok/s]", static_cast<long long>(r.output_tokens), rate);
    const int len = static_cast<int>(status.size());
    // Only when it fits on this line: moving back across a wrap is unreliable.
    if (column_ + len < width_) {
      std::fprintf(stdout, "\033[2m%s\033[0m\033[%dD", status.c_str(), len);
      status_len_ = len;
    }
  }
  std::fflush(stdout);
}

void StreamPrinter::Print(const std::string& text) {
  EraseStatus();
  Write(text);
  std::fflush(stdout);
}

void StreamPrinter::Finish() {
  EraseStatus();
  if (wrote_text_ && !at_line_start_) std::fputc('\n', stdout);
  std::fflush(stdout);
  wrote_text_ = false;
  at_line_start_ = true;
  column_ = 0;
}

std::string SummaryLine(const StreamOutcome& o) {
  const RequestRecord& r = o.record;
  std::string line = Format("[%lld prompt + %lld tokens in %.2f s", static_cast<long long>(r.prompt_tokens),
                            static_cast<long long>(r.output_tokens), std::isnan(r.e2e_s) ? 0.0 : r.e2e_s);
  if (!std::isnan(r.ttft_s)) {
    line += Format(": TTFT %.0f ms", r.ttft_s * 1e3);
    if (r.e2e_s > 0) line += Format(", %.1f tok/s", r.output_tokens / r.e2e_s);
    const double tpot = r.Tpot();
    if (!std::isnan(tpot) && tpot > 0) line += Format(", decode %.1f tok/s", 1.0 / tpot);
  }
  if (!std::isnan(r.server_ttft_ms)) {
    line += Format(" | server: queue %.1f ms, TTFT %.0f ms, decode %.1f tok/s", r.server_queue_ms,
                   r.server_ttft_ms, r.server_decode_tokens_per_s);
  }
  if (!std::isnan(r.compression_ratio)) line += Format(" | KV %.2fx", r.compression_ratio);
  if (!r.finish_reason.empty()) line += " | finish " + r.finish_reason;
  if (r.preemptions > 0) line += Format(" | %u preemptions", r.preemptions);
  return line + "]";
}

}  // namespace dms::client
