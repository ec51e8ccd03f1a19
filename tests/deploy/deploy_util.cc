#include "tests/deploy/deploy_util.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/server/server_harness.h"

namespace dms::testing {
namespace {

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

std::string RepoRoot() {
  return std::filesystem::weakly_canonical(TestDataDir() + "/../..").string();
}

std::string DeployPath(const std::string& relative) { return RepoRoot() + "/deploy/" + relative; }

StatusOr<nlohmann::json> LoadYamlDocuments(const std::string& path) {
  // Debian's python3 with python3-yaml (scripts/setup.sh), not whatever
  // python3 comes first in PATH.
  const std::string python = std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  CommandResult r = RunCommand(python + " " + ShellQuote(RepoRoot() + "/tests/deploy/yaml_to_json.py") + " " +
                               ShellQuote(path));
  if (r.exit_code != 0) return InvalidArgumentError(Trim(r.err.empty() ? path + ": cannot parse" : r.err));
  nlohmann::json docs = nlohmann::json::parse(r.out, nullptr, false);
  if (docs.is_discarded() || !docs.is_array()) return InvalidArgumentError(path + ": converter gave no JSON array");
  return docs;
}

StatusOr<nlohmann::json> LoadYaml(const std::string& path) {
  DMS_ASSIGN_OR_RETURN(nlohmann::json docs, LoadYamlDocuments(path));
  if (docs.empty()) return InvalidArgumentError(path + ": no YAML document");
  return docs[0];
}

std::set<std::string> HelpFlags(const std::string& help_text) {
  std::set<std::string> flags;
  std::istringstream in(help_text);
  std::string line;
  while (std::getline(in, line)) {
    const std::string t = Trim(line);
    if (t.empty() || t[0] != '-') continue;
    // The option column: "-q,--quiet" or "--model TEXT REQUIRED".
    const std::string first = t.substr(0, t.find_first_of(" \t"));
    std::stringstream names(first);
    std::string name;
    while (std::getline(names, name, ',')) {
      if (name.rfind("--", 0) == 0 && name.size() > 2) flags.insert(name);
    }
  }
  return flags;
}

std::set<std::string> BinaryFlags(const std::string& binary_and_subcommand) {
  CommandResult r = RunCommand(BinDir() + "/" + binary_and_subcommand + " --help");
  if (r.exit_code != 0) {
    ADD_FAILURE() << binary_and_subcommand << " --help failed (" << r.exit_code << "): " << r.err;
    return {};
  }
  return HelpFlags(r.out);
}

std::string FlagOfEnvVar(const std::string& var) {
  static const std::string kPrefix = "DMS_SERVER_";
  if (var.rfind(kPrefix, 0) != 0 || var.size() == kPrefix.size()) return "";
  std::string flag = "--";
  for (char c : var.substr(kPrefix.size())) {
    flag += c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return flag;
}

int PortOf(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 == address.size()) return -1;
  const std::string port = address.substr(colon + 1);
  if (!std::all_of(port.begin(), port.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    return -1;
  }
  return std::stoi(port);
}

double DurationSeconds(const nlohmann::json& value) {
  if (value.is_number()) return value.get<double>();
  if (!value.is_string()) return -1;
  const std::string s = value.get<std::string>();
  static const std::regex part("([0-9.]+)(ms|h|m|s)");
  double total = 0;
  size_t covered = 0;
  for (auto it = std::sregex_iterator(s.begin(), s.end(), part); it != std::sregex_iterator(); ++it) {
    const double v = std::stod((*it)[1]);
    const std::string unit = (*it)[2];
    total += unit == "h" ? v * 3600 : unit == "m" ? v * 60 : unit == "ms" ? v / 1000 : v;
    covered += it->length();
  }
  return covered == s.size() && !s.empty() ? total : -1;
}

std::map<std::string, std::string> ReadEnvFile(const std::string& path) {
  std::map<std::string, std::string> out;
  std::istringstream in(ReadFile(path));
  std::string line;
  while (std::getline(in, line)) {
    const std::string t = Trim(line);
    if (t.empty() || t[0] == '#') continue;
    const size_t eq = t.find('=');
    if (eq == std::string::npos) continue;
    out[Trim(t.substr(0, eq))] = Trim(t.substr(eq + 1));
  }
  return out;
}

int DockerFile::StageIndex(const std::string& name) const {
  for (size_t i = 0; i < stages.size(); ++i) {
    if (stages[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::vector<const DockerInstruction*> DockerFile::Find(const std::string& keyword, int stage) const {
  std::vector<const DockerInstruction*> out;
  for (const DockerInstruction& i : instructions) {
    if (i.keyword == keyword && i.stage == stage) out.push_back(&i);
  }
  return out;
}

StatusOr<DockerFile> ParseDockerfile(const std::string& text, const std::string& name) {
  DockerFile df;
  std::istringstream in(text);
  std::string line, pending;
  int line_no = 0, start_line = 0;
  auto finish = [&]() -> Status {
    const std::string t = Trim(pending);
    pending.clear();
    if (t.empty()) return OkStatus();
    DockerInstruction ins;
    const size_t sp = t.find_first_of(" \t");
    ins.keyword = Upper(t.substr(0, sp));
    ins.args = sp == std::string::npos ? "" : Trim(t.substr(sp));
    ins.line = start_line;
    if (ins.args.empty()) {
      return InvalidArgumentError(name + ":" + std::to_string(ins.line) + ": " + ins.keyword + " without arguments");
    }
    if (ins.keyword == "FROM") {
      std::vector<std::string> w = SplitWords(ins.args);
      std::erase_if(w, [](const std::string& s) { return s.rfind("--", 0) == 0; });
      DockerStage stage;
      if (w.size() == 1) {
        stage.base = w[0];
      } else if (w.size() == 3 && Upper(w[1]) == "AS") {
        stage.base = w[0];
        stage.name = w[2];
      } else {
        return InvalidArgumentError(name + ":" + std::to_string(ins.line) + ": expected FROM IMAGE [AS NAME]");
      }
      df.stages.push_back(stage);
    } else if (ins.keyword == "ARG" && df.stages.empty()) {
      for (auto& [k, v] : ParseKeyValues(ins.args)) df.global_args[k] = v;
    }
    ins.stage = static_cast<int>(df.stages.size()) - 1;
    df.instructions.push_back(ins);
    return OkStatus();
  };
  while (std::getline(in, line)) {
    ++line_no;
    const std::string t = Trim(line);
    if (t.empty() || t[0] == '#') continue;  // comments end nothing, even inside a continuation
    if (pending.empty()) start_line = line_no;
    if (!t.empty() && t.back() == '\\') {
      pending += t.substr(0, t.size() - 1) + " ";
      continue;
    }
    pending += t;
    DMS_RETURN_IF_ERROR(finish());
  }
  if (!Trim(pending).empty()) {
    return InvalidArgumentError(name + ":" + std::to_string(start_line) + ": continuation runs past the end");
  }
  return df;
}

std::vector<std::string> SplitWords(const std::string& args) {
  const std::string t = Trim(args);
  if (!t.empty() && t[0] == '[') {
    nlohmann::json j = nlohmann::json::parse(t, nullptr, false);
    if (j.is_array()) {
      std::vector<std::string> out;
      for (const auto& e : j) out.push_back(e.is_string() ? e.get<std::string>() : e.dump());
      return out;
    }
  }
  std::vector<std::string> out;
  std::string cur;
  bool have = false;
  char quote = 0;
  for (char c : t) {
    if (quote) {
      if (c == quote) quote = 0; else cur += c;
    } else if (c == '"' || c == '\'') {
      quote = c;
      have = true;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (have) out.push_back(cur);
      cur.clear();
      have = false;
    } else {
      cur += c;
      have = true;
    }
  }
  if (have) out.push_back(cur);
  return out;
}

std::map<std::string, std::string> ParseKeyValues(const std::string& args) {
  std::map<std::string, std::string> out;
  for (const std::string& w : SplitWords(args)) {
    const size_t eq = w.find('=');
    if (eq == std::string::npos) out[w] = "";
    else out[w.substr(0, eq)] = w.substr(eq + 1);
  }
  return out;
}

std::set<std::string> ScrapeSampleNames(const std::string& scrape) {
  std::set<std::string> names;
  std::istringstream in(scrape);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    names.insert(line.substr(0, line.find_first_of("{ ")));
  }
  return names;
}

std::map<std::string, std::set<std::string>> ScrapeLabelPairs(const std::string& scrape) {
  static const std::regex pair(R"re(([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)")re");
  std::map<std::string, std::set<std::string>> out;
  std::istringstream in(scrape);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const size_t brace = line.find('{');
    if (brace == std::string::npos) continue;
    const std::string name = line.substr(0, brace);
    const std::string labels = line.substr(brace, line.find('}') - brace);
    for (auto it = std::sregex_iterator(labels.begin(), labels.end(), pair); it != std::sregex_iterator(); ++it) {
      out[name].insert((*it)[1].str() + "=\"" + (*it)[2].str() + "\"");
    }
  }
  return out;
}

std::set<std::string> MetricRefs(const std::string& promql) {
  static const std::regex metric(R"(\bdms_[a-z0-9_]+\b)");
  std::set<std::string> out;
  for (auto it = std::sregex_iterator(promql.begin(), promql.end(), metric); it != std::sregex_iterator(); ++it) {
    out.insert(it->str());
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> LabelMatchers(const std::string& promql) {
  static const std::regex selector(R"((dms_[a-z0-9_]+)\s*\{([^}]*)\})");
  static const std::regex matcher(R"re(([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"([^"]*)")re");
  std::vector<std::pair<std::string, std::string>> out;
  for (auto s = std::sregex_iterator(promql.begin(), promql.end(), selector); s != std::sregex_iterator(); ++s) {
    const std::string inner = (*s)[2];
    for (auto m = std::sregex_iterator(inner.begin(), inner.end(), matcher); m != std::sregex_iterator(); ++m) {
      if ((*m)[2] == "=") out.emplace_back((*s)[1], (*m)[1].str() + "=\"" + (*m)[3].str() + "\"");
    }
  }
  return out;
}

std::string SubstituteGrafana(const std::string& expr, const std::string& instance_regex,
                              const std::string& rate_interval) {
  std::string out = expr;
  auto replace_all = [&out](const std::string& from, const std::string& to) {
    for (size_t p = out.find(from); p != std::string::npos; p = out.find(from, p + to.size())) {
      out.replace(p, from.size(), to);
    }
  };
  replace_all("$__rate_interval", rate_interval);
  replace_all("${instance}", instance_regex);
  replace_all("$instance", instance_regex);
  return out;
}

std::vector<std::pair<std::string, std::string>> DashboardQueries(const nlohmann::json& dashboard) {
  std::vector<std::pair<std::string, std::string>> out;
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& panels) {
    if (!panels.is_array()) return;
    for (const auto& p : panels) {
      const std::string title = p.value("title", std::string("(untitled)"));
      if (p.contains("targets")) {
        for (const auto& t : p["targets"]) {
          if (t.contains("expr")) out.emplace_back(title, t["expr"].get<std::string>());
        }
      }
      if (p.contains("panels")) walk(p["panels"]);
    }
  };
  walk(dashboard.value("panels", nlohmann::json::array()));
  return out;
}

std::string UrlEncode(const std::string& s) {
  std::string out;
  char buf[4];
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '_' || c == '.' || c == '-' || c == '~') {
      out += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                           const std::string& log_path)
    : log_path_(log_path) {
  pid_ = fork();
  if (pid_ == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    FILE* f = std::fopen(log_path.c_str(), "w");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::vector<char*> cargv;
    std::vector<std::string> copy = argv;
    for (auto& a : copy) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execvp(cargv[0], cargv.data());
    _exit(127);
  }
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool ChildProcess::Running() { return Wait(0) == -1000; }

int ChildProcess::Wait(double timeout_s) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  while (pid_ > 0) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
      return exit_code_;
    }
    if (std::chrono::steady_clock::now() >= until) return -1000;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return exit_code_;
}

void ChildProcess::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

std::string ChildProcess::Log() const { return ReadFile(log_path_); }

nlohmann::json PrometheusApi(int port, const std::string& path_and_query) {
  const std::string body = HttpGet(port, "/api/v1/" + path_and_query);
  if (body.empty()) return nullptr;
  nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  return j.is_discarded() ? nlohmann::json(nullptr) : j;
}

}  // namespace dms::testing
