// The deploy configurations run for real: dms-server starts through the
// container entry point with the exact flags of the Dockerfile, compose and
// Kubernetes (only the model, backend and listen addresses replaced to fit
// this machine), answers the health services the probes name, and serves
// every metric and label value that the alerts, dashboard and autoscaler use.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <thread>

#include "tests/deploy/deploy_util.h"
#include "tests/server/server_harness.h"

namespace dms::testing {
namespace {

namespace fs = std::filesystem;

// A configuration's DMS_SERVER_* variables, made runnable here.
std::map<std::string, std::string> Runnable(std::map<std::string, std::string> flags, const TempDir& tmp) {
  flags["DMS_SERVER_MODEL"] = TestDataDir() + "/models/dms-neuron-w16-long";
  flags["DMS_SERVER_BACKEND"] = "cpu";  // no GPU here
  flags["DMS_SERVER_LISTEN"] = "127.0.0.1:" + std::to_string(FreePort());
  flags["DMS_SERVER_METRICS_LISTEN"] = "127.0.0.1:" + std::to_string(FreePort());
  flags["DMS_SERVER_READY_FILE"] = tmp.File("ready.json");
  flags["PATH"] = BinDir() + ":" + std::getenv("PATH");
  return flags;
}

struct RunningServer {
  explicit RunningServer(const std::map<std::string, std::string>& flags)
      : env(Runnable(flags, tmp)), process({DeployPath("docker/entrypoint.sh")}, env, tmp.File("log")) {
    for (int i = 0; i < 3000 && process.Running() && !fs::exists(tmp.File("ready.json")); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  bool ready() const { return fs::exists(tmp.File("ready.json")); }
  std::string target() const { return env.at("DMS_SERVER_LISTEN"); }
  int metrics_port() const { return PortOf(env.at("DMS_SERVER_METRICS_LISTEN")); }
  TempDir tmp;
  std::map<std::string, std::string> env;
  ChildProcess process;
};

std::map<std::string, std::string> FlagsOf(const nlohmann::json& environment) {
  std::map<std::string, std::string> out;
  for (auto& [k, v] : environment.items()) out[k] = v.is_string() ? v.get<std::string>() : v.dump();
  return out;
}

std::map<std::string, std::map<std::string, std::string>> Configurations() {
  std::map<std::string, std::map<std::string, std::string>> configs;
  configs["k8s/server.env"] = ReadEnvFile(DeployPath("k8s/server.env"));
  auto compose = LoadYaml(DeployPath("compose/compose.yaml"));
  auto cpu = LoadYaml(DeployPath("compose/compose.cpu.yaml"));
  if (compose.ok() && cpu.ok()) {
    auto env = FlagsOf((*compose)["services"]["dms-server"]["environment"]);
    configs["compose/compose.yaml"] = env;
    for (auto& [k, v] : FlagsOf((*cpu)["services"]["dms-server"]["environment"])) env[k] = v;
    configs["compose/compose.yaml + compose.cpu.yaml"] = env;
  } else {
    ADD_FAILURE() << "compose files do not parse";
  }
  auto df = ParseDockerfile(ReadFile(DeployPath("docker/Dockerfile")), "Dockerfile");
  if (df.ok()) {
    std::map<std::string, std::string> env;
    for (const DockerInstruction* i : df->Find("ENV", df->StageIndex("runtime"))) {
      for (auto& [k, v] : ParseKeyValues(i->args)) {
        if (!FlagOfEnvVar(k).empty()) env[k] = v;
      }
    }
    configs["docker/Dockerfile"] = env;
  } else {
    ADD_FAILURE() << df.status().message();
  }
  return configs;
}

// How long a SIGTERM'd server may take to exit 0. The production configs ask
// for 90% of free memory as KV pool (~20 GB here); the pool is an untouched
// mapping (common/lazy_memory.h), so starting and stopping cost the same
// as a small pool, also under ASan/TSan (TSan: all four configs in 12 s; as a
// heap block, 175 s).
constexpr int kExitSeconds = 60;

TEST(LiveConfig, ServerStartsWithEachConfigurationsFlags) {
  for (const auto& [name, flags] : Configurations()) {
    SCOPED_TRACE(name);
    ASSERT_GE(flags.size(), 4u);
    RunningServer server(flags);
    ASSERT_TRUE(server.ready()) << server.process.Log();
    EXPECT_FALSE(HttpGet(server.metrics_port(), "/metrics").empty());
    server.process.Signal(SIGTERM);
    EXPECT_EQ(server.process.Wait(kExitSeconds), 0) << server.process.Log();
  }
}

// The services the Kubernetes probes name are the ones the server reports.
TEST(LiveConfig, ProbedHealthServicesAnswerServing) {
  auto deployment = LoadYaml(DeployPath("k8s/deployment.yaml"));
  ASSERT_TRUE(deployment.ok());
  const auto& c = (*deployment)["spec"]["template"]["spec"]["containers"][0];
  RunningServer server(ReadEnvFile(DeployPath("k8s/server.env")));
  ASSERT_TRUE(server.ready()) << server.process.Log();
  for (const char* probe : {"startupProbe", "readinessProbe", "livenessProbe"}) {
    const std::string service = c[probe]["grpc"].value("service", "");
    CommandResult r = RunCommand(BinDir() + "/dms health --target " + server.target() + " --service '" + service + "'");
    EXPECT_EQ(r.exit_code, 0) << probe << " service '" << service << "': " << r.out << r.err;
    EXPECT_EQ(r.out, "SERVING\n") << probe;
  }
  // A service the server does not have is not SERVING: the check can fail.
  CommandResult r = RunCommand(BinDir() + "/dms health --target " + server.target() + " --service dms.v1.Nope");
  EXPECT_NE(r.exit_code, 0) << r.out;
}

// dms_* names and label="value" matchers used by the deploy files.
struct MetricUse {
  std::string file;
  std::string text;
};

std::vector<MetricUse> MetricUses() {
  std::vector<MetricUse> uses;
  auto rules = LoadYaml(DeployPath("prometheus/alerts.yml"));
  if (rules.ok()) {
    for (const auto& g : (*rules)["groups"]) {
      for (const auto& r : g["rules"]) uses.push_back({"alerts.yml " + r.value("alert", ""), r["expr"]});
    }
  }
  const auto dashboard = nlohmann::json::parse(ReadFile(DeployPath("grafana/dashboards/dms-serve.json")));
  for (const auto& [title, expr] : DashboardQueries(dashboard)) uses.push_back({"dashboard " + title, expr});
  for (const auto& v : dashboard["templating"]["list"]) uses.push_back({"dashboard $" + v["name"].get<std::string>(),
                                                                       v["definition"]});
  uses.push_back({"hpa.yaml", ReadFile(DeployPath("k8s/hpa.yaml"))});
  uses.push_back({"adapter-rules.yaml", ReadFile(DeployPath("k8s/prometheus-adapter/adapter-rules.yaml"))});
  return uses;
}

TEST(LiveConfig, MetricNamesAndLabelValuesExistInTheScrape) {
  RunningServer server(ReadEnvFile(DeployPath("k8s/server.env")));
  ASSERT_TRUE(server.ready()) << server.process.Log();
  const std::string scrape = HttpGet(server.metrics_port(), "/metrics");
  const std::set<std::string> names = ScrapeSampleNames(scrape);
  const auto labels = ScrapeLabelPairs(scrape);
  ASSERT_TRUE(names.count("dms_requests_waiting")) << scrape;
  std::set<std::string> used;
  for (const MetricUse& u : MetricUses()) {
    const std::set<std::string> refs = MetricRefs(u.text);
    // up: the series Prometheus itself writes per target.
    EXPECT_TRUE(!refs.empty() || u.text.find("up{job=") != std::string::npos)
        << u.file << " uses no dms_ metric: " << u.text;
    for (const std::string& m : refs) {
      used.insert(m);
      EXPECT_TRUE(names.count(m)) << u.file << ": dms-server has no metric " << m;
    }
    for (const auto& [metric, pair] : LabelMatchers(u.text)) {
      auto it = labels.find(metric);
      EXPECT_TRUE(it != labels.end() && it->second.count(pair))
          << u.file << ": no " << metric << " series with " << pair;
    }
  }
  // The dashboard and alerts cover what the issue asks to watch.
  for (const char* m : {"dms_time_to_first_token_seconds_bucket", "dms_inter_token_latency_seconds_bucket",
                        "dms_decode_tokens_per_second", "dms_requests_finished_total", "dms_requests_waiting",
                        "dms_requests_running", "dms_kv_blocks", "dms_kv_tokens", "dms_kv_compression_ratio",
                        "dms_kv_compression_ratio_layer", "dms_device_memory_bytes", "dms_preemptions_total"}) {
    EXPECT_TRUE(used.count(m)) << m << " is not on the dashboard";
  }
  // The checker itself: a misspelt name or label value is caught.
  EXPECT_FALSE(names.count(*MetricRefs("rate(dms_requests_finishd_total[1m])").begin()));
  const auto bad = LabelMatchers("dms_kv_blocks{state=\"fre\"}");
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_FALSE(labels.at("dms_kv_blocks").count(bad[0].second));
}

}  // namespace
}  // namespace dms::testing
