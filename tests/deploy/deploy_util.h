// Helpers for the deploy/ tests: reading the YAML, JSON and Dockerfile there,
// the flags and metrics the real binaries have, and child processes
// (dms-server through the container entry point, Prometheus).
#pragma once

#include <sys/types.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/status.h"
#include "tests/test_util.h"

namespace dms::testing {

// The repository root (the Docker build context).
std::string RepoRoot();
// RepoRoot() + "/deploy/" + relative.
std::string DeployPath(const std::string& relative);

// Every YAML document in `path`, as JSON (tests/deploy/yaml_to_json.py).
// INVALID_ARGUMENT "<path>: <parser message>" when it does not parse.
StatusOr<nlohmann::json> LoadYamlDocuments(const std::string& path);
// The first document, or the same error.
StatusOr<nlohmann::json> LoadYaml(const std::string& path);

// "--name" tokens that `--help` text lists as options.
std::set<std::string> HelpFlags(const std::string& help_text);
// `BinDir()/binary args... --help` flags (fails the test when it does not run).
std::set<std::string> BinaryFlags(const std::string& binary_and_subcommand);
// DMS_SERVER_KV_MEMORY -> "--kv-memory"; "" when not DMS_SERVER_-prefixed.
std::string FlagOfEnvVar(const std::string& var);
// "0.0.0.0:50051" -> 50051; -1 when there is no numeric port.
int PortOf(const std::string& address);
// "40s", "1m30s", 40 -> seconds; -1 when unparsable.
double DurationSeconds(const nlohmann::json& value);
// KEY=VALUE lines (comments and blanks skipped).
std::map<std::string, std::string> ReadEnvFile(const std::string& path);

// A Dockerfile as instructions (continuations joined, comments dropped).
struct DockerInstruction {
  std::string keyword;  // upper case: FROM, RUN, COPY...
  std::string args;     // the rest of the line, continuations joined
  int line = 0;         // 1-based line of the keyword
  int stage = -1;       // index into DockerFile::stages (-1: before any FROM)
};
struct DockerStage {
  std::string base;  // image or ${ARG}
  std::string name;  // the AS name ("" if none)
};
struct DockerFile {
  std::vector<DockerInstruction> instructions;
  std::vector<DockerStage> stages;
  std::map<std::string, std::string> global_args;  // ARG before the first FROM, with defaults
  int StageIndex(const std::string& name) const;     // -1 when no such stage
  std::vector<const DockerInstruction*> Find(const std::string& keyword, int stage) const;
};
// INVALID_ARGUMENT "<name>:<line>: ..." for a malformed instruction.
StatusOr<DockerFile> ParseDockerfile(const std::string& text, const std::string& name);
// Shell-like split of an instruction's arguments: a JSON array (exec form)
// or whitespace-separated words with quotes removed.
std::vector<std::string> SplitWords(const std::string& args);
// KEY=VALUE pairs of an ENV/ARG instruction (quotes removed).
std::map<std::string, std::string> ParseKeyValues(const std::string& args);

// Metric sample names in a Prometheus text scrape ("dms_batch_size_bucket"...).
std::set<std::string> ScrapeSampleNames(const std::string& scrape);
// label="value" pairs seen per sample name in a scrape.
std::map<std::string, std::set<std::string>> ScrapeLabelPairs(const std::string& scrape);
// dms_* metric names a PromQL expression refers to.
std::set<std::string> MetricRefs(const std::string& promql);
// (metric, label="value") equality matchers written as metric{...label="value"...}.
std::vector<std::pair<std::string, std::string>> LabelMatchers(const std::string& promql);

// A Grafana panel query made runnable: $instance and ${instance} -> the
// regex, $__rate_interval -> rate_interval. Other $ variables stay, so a test
// sees them.
std::string SubstituteGrafana(const std::string& expr, const std::string& instance_regex,
                              const std::string& rate_interval);
// Every (panel title, expr) of a dashboard, rows' nested panels included.
std::vector<std::pair<std::string, std::string>> DashboardQueries(const nlohmann::json& dashboard);
std::string UrlEncode(const std::string& s);

// A child process: argv[0] is run with extra environment variables, stdout
// and stderr to a log file; killed (SIGKILL) by the destructor if running.
class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
               const std::string& log_path);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  bool Running();
  // Waits for exit; the exit code, or -1000 if still running after timeout_s.
  int Wait(double timeout_s);
  void Signal(int sig);
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1000;
  std::string log_path_;
};

// GET /api/v1/<path> from a Prometheus on loopback; the parsed body (null on failure).
nlohmann::json PrometheusApi(int port, const std::string& path_and_query);

}  // namespace dms::testing
