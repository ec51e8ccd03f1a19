// Helpers shared by the tests: where test data lives, temporary directories,
// and running the project's binaries as a user would.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>

namespace dms::testing {

// tests/data in the source tree (committed fixtures).
std::string TestDataDir();
// Directory holding the real Qwen3 tokenizer.json (fetched by setup); the
// test fails with a clear message if it is missing.
std::string TokenizerDir();
// ../shared/fixtures when it exists, else "" (optional outside check).
std::string SharedFixturesDir();
// build/bin, where dms-engine and friends are.
std::string BinDir();

// A fresh empty directory under $TMPDIR, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs `command` through /bin/sh with optional stdin text.
CommandResult RunCommand(const std::string& command, const std::string& stdin_text = "");

// Waits for child process *pid to exit (polling, up to timeout_s): its exit
// code, or -signal if a signal ended it (*pid becomes -1 either way); -1000
// if it is still running at the deadline.
int WaitForChild(pid_t* pid, double timeout_s);

// Runs `fn` on a thread with a stack of `stack_bytes` and waits for it. Code
// that recurses once per nesting level of its input overflows such a stack
// (and crashes the test) long before 100,000 levels, whatever the frame size.
inline constexpr size_t kSmallStackBytes = size_t{1} << 20;
void RunWithStack(size_t stack_bytes, const std::function<void()>& fn);

// "[[[...]]]": JSON arrays nested `levels` deep (100,000 levels: 200 kB).
std::string DeeplyNestedJson(int levels);

void WriteFile(const std::string& path, const std::string& contents);
std::string ReadFile(const std::string& path);

}  // namespace dms::testing
