// A one-line progress bar on stderr, redrawn in place:
// "concurrency=4 [#########.........] 45/100  in flight 4  9.8 req/s  612 tok/s  0:04.6"
#pragma once

#include <cstdint>
#include <string>

namespace dms::client {

class ProgressBar {
 public:
  // total: requests expected (0: unknown); duration_s: the run's time limit
  // (0: none). Draws nothing unless enabled.
  ProgressBar(std::string label, int64_t total, double duration_s, bool enabled);

  void Update(int64_t done, int64_t failed, int64_t in_flight, int64_t output_tokens, double elapsed_s);
  // Leaves the last state on its own line.
  void Finish();

  // The text of one frame (exposed for tests).
  static std::string Render(const std::string& label, int64_t total, double duration_s, int64_t done,
                            int64_t failed, int64_t in_flight, int64_t output_tokens, double elapsed_s,
                            int width);

 private:
  std::string label_;
  int64_t total_;
  double duration_s_;
  bool enabled_;
  bool drawn_ = false;
};

}  // namespace dms::client
