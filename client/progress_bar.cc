#include "client/progress_bar.h"

#include <algorithm>
#include <cstdio>

#include "client/client_util.h"

namespace dms::client {

ProgressBar::ProgressBar(std::string label, int64_t total, double duration_s, bool enabled)
    : label_(std::move(label)), total_(total), duration_s_(duration_s), enabled_(enabled) {}

std::string ProgressBar::Render(const std::string& label, int64_t total, double duration_s, int64_t done,
                                int64_t failed, int64_t in_flight, int64_t output_tokens, double elapsed_s,
                                int width) {
  // Progress is by requests when their number is known, else by time.
  double fraction = 0;
  if (total > 0) fraction = static_cast<double>(done + failed) / total;
  if (duration_s > 0) fraction = std::max(fraction, elapsed_s / duration_s);
  fraction = std::clamp(fraction, 0.0, 1.0);
  const int filled = static_cast<int>(fraction * width);
  std::string bar(static_cast<size_t>(width) + 2, '.');
  bar.front() = '[';
  bar.back() = ']';
  for (int i = 0; i < filled; ++i) bar[1 + i] = '#';
  std::string counts = total > 0 ? Format("%lld/%lld", static_cast<long long>(done + failed), static_cast<long long>(total))
                                 : Format("%lld", static_cast<long long>(done + failed));
  if (failed > 0) counts += Format(" (%lld failed)", static_cast<long long>(failed));
  const double rate = elapsed_s > 0 ? done / elapsed_s : 0;
  const double tps = elapsed_s > 0 ? output_tokens / elapsed_s : 0;
  const int minutes = static_cast<int>(elapsed_s / 60);
  return Format("%s %s %s  in flight %lld  %.1f req/s  %.0f tok/s  %d:%04.1f", label.c_str(), bar.c_str(),
                counts.c_str(), static_cast<long long>(in_flight), rate, tps, minutes, elapsed_s - 60 * minutes);
}

void ProgressBar::Update(int64_t done, int64_t failed, int64_t in_flight, int64_t output_tokens, double elapsed_s) {
  if (!enabled_) return;
  const std::string line =
      Render(label_, total_, duration_s_, done, failed, in_flight, output_tokens, elapsed_s, 24);
  std::fprintf(stderr, "\r\033[K%s", line.c_str());
  std::fflush(stderr);
  drawn_ = true;
}

void ProgressBar::Finish() {
  if (enabled_ && drawn_) std::fputc('\n', stderr);
  drawn_ = false;
}

}  // namespace dms::client
