// Ctrl-C handling: while a handler is set (a stream or a benchmark runs),
// SIGINT calls it on a watcher thread (e.g. to cancel the stream) instead of
// killing the program; with none set, SIGINT ends the program as usual.
#pragma once

#include <functional>

namespace dms::client {

class InterruptScope {
 public:
  // Sets `on_interrupt` for the lifetime of this object (one at a time).
  explicit InterruptScope(std::function<void()> on_interrupt);
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;

  // Whether SIGINT arrived while this scope was active.
  bool interrupted() const;
};

}  // namespace dms::client
