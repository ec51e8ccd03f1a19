// Starts a shell command in the background with stdin from a string and
// stdout/stderr to files, so a test can signal it (Ctrl-C) mid-run.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "tests/test_util.h"

namespace dms::testing {

class ChildProcess {
 public:
  ChildProcess(const std::string& command, const std::string& stdin_text = "") {
    WriteFile(dir_.File("stdin"), stdin_text);
    const std::string full = "exec " + command + " <'" + dir_.File("stdin") + "' >'" + dir_.File("stdout") +
                             "' 2>'" + dir_.File("stderr") + "'";
    pid_ = fork();
    if (pid_ == 0) {
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, nullptr);
      signal(SIGINT, SIG_DFL);
      execl("/bin/sh", "sh", "-c", full.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~ChildProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  void Signal(int sig) {
    if (pid_ > 0) kill(pid_, sig);
  }
  // The exit code, -signal if killed, -1000 if still running after timeout.
  int Wait(double timeout_s = 60) { return WaitForChild(&pid_, timeout_s); }
  std::string out() const { return ReadFile(dir_.File("stdout")); }
  std::string err() const { return ReadFile(dir_.File("stderr")); }

 private:
  TempDir dir_;
  pid_t pid_ = -1;
};

}  // namespace dms::testing
