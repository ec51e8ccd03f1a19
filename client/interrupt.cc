#include "client/interrupt.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

namespace dms::client {
namespace {

// The signal handler may only touch these (async-signal-safe) objects.
std::atomic<bool> g_active{false};
int g_pipe[2] = {-1, -1};

std::mutex g_mu;
std::function<void()> g_handler;  // guarded by g_mu
std::atomic<bool> g_interrupted{false};

void OnSigint(int) {
  if (g_active.load()) {
    const char byte = 1;
    [[maybe_unused]] ssize_t n = ::write(g_pipe[1], &byte, 1);
    return;
  }
  ::signal(SIGINT, SIG_DFL);
  ::raise(SIGINT);
}

// Runs the handler outside signal context, where it may take locks.
void WatchPipe() {
  char byte;
  while (::read(g_pipe[0], &byte, 1) == 1) {
    std::lock_guard<std::mutex> lock(g_mu);
    if (g_handler) {
      g_interrupted = true;
      g_handler();
    }
  }
}

void InstallOnce() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (::pipe(g_pipe) != 0) return;
    std::thread(WatchPipe).detach();
    struct sigaction sa {};
    sa.sa_handler = OnSigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGINT, &sa, nullptr);
  });
}

}  // namespace

InterruptScope::InterruptScope(std::function<void()> on_interrupt) {
  InstallOnce();
  std::lock_guard<std::mutex> lock(g_mu);
  g_handler = std::move(on_interrupt);
  g_interrupted = false;
  g_active = g_pipe[1] >= 0;
}

InterruptScope::~InterruptScope() {
  std::lock_guard<std::mutex> lock(g_mu);
  g_active = false;
  g_handler = nullptr;
}

bool InterruptScope::interrupted() const { return g_interrupted.load(); }

}  // namespace dms::client
