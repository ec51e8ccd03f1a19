// deploy/ YAML: yamllint passes (and fails on a broken file), every file
// parses, and the compose files agree with the server's flags and ports, the
// client's commands, the Prometheus config and the Grafana provisioning.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "tests/deploy/deploy_util.h"

namespace dms::testing {
namespace {

namespace fs = std::filesystem;

const char kYamllint[] = "/usr/bin/yamllint";

std::vector<std::string> YamlFiles() {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(RepoRoot() + "/deploy")) {
    const std::string ext = e.path().extension().string();
    if (e.is_regular_file() && (ext == ".yaml" || ext == ".yml")) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

TEST(Yamllint, DeployTreeIsClean) {
  ASSERT_TRUE(fs::exists(kYamllint)) << "install the Debian package 'yamllint' (scripts/setup.sh)";
  CommandResult r = RunCommand(std::string(kYamllint) + " -s -f parsable -c " + DeployPath(".yamllint.yaml") + " " +
                               RepoRoot() + "/deploy");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "");
}

TEST(Yamllint, CatchesADuplicateKeyAndBadIndentation) {
  ASSERT_TRUE(fs::exists(kYamllint));
  TempDir tmp;
  std::string text = ReadFile(DeployPath("compose/compose.yaml"));
  const size_t at = text.find("    image: dms-serve:cuda\n");
  ASSERT_NE(at, std::string::npos);
  text.insert(at, "    image: other\n");  // the same key twice in one mapping
  WriteFile(tmp.File("compose.yaml"), text);
  CommandResult r = RunCommand(std::string(kYamllint) + " -s -f parsable -c " + DeployPath(".yamllint.yaml") + " " +
                               tmp.File("compose.yaml"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.out.find("duplication of key \"image\""), std::string::npos) << r.out;
}

TEST(DeployYaml, EveryFileParses) {
  const auto files = YamlFiles();
  EXPECT_GE(files.size(), 15u);
  for (const std::string& f : files) {
    auto docs = LoadYamlDocuments(f);
    EXPECT_TRUE(docs.ok()) << docs.status().message();
  }
  // The loader reports a bad file in one line naming it.
  TempDir tmp;
  WriteFile(tmp.File("bad.yaml"), "a: [1, 2\n");
  auto bad = LoadYamlDocuments(tmp.File("bad.yaml"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind(tmp.File("bad.yaml") + ": while parsing a flow sequence", 0), 0u)
      << bad.status().message();
}

class ComposeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto c = LoadYaml(DeployPath("compose/compose.yaml"));
    ASSERT_TRUE(c.ok()) << c.status().message();
    compose_ = *c;
    auto cpu = LoadYaml(DeployPath("compose/compose.cpu.yaml"));
    ASSERT_TRUE(cpu.ok()) << cpu.status().message();
    cpu_ = *cpu;
    server_ = compose_["services"]["dms-server"];
    ASSERT_TRUE(server_.is_object());
  }
  std::string Env(const std::string& var) const { return server_["environment"].value(var, std::string()); }
  // Host path of a "HOST:CONTAINER[:ro]" volume of `service` mounted at `container`.
  std::string MountedFrom(const std::string& service, const std::string& container) const {
    for (const auto& v : compose_["services"][service].value("volumes", nlohmann::json::array())) {
      const std::string s = v.get<std::string>();
      const size_t c1 = s.find(':');
      const std::string target = s.substr(c1 + 1, s.find(':', c1 + 1) - c1 - 1);
      if (target == container) return DeployPath("compose/") + s.substr(0, c1);
    }
    return "";
  }
  nlohmann::json compose_, cpu_, server_;
};

TEST_F(ComposeTest, ServerVariablesAreRealFlags) {
  const std::set<std::string> flags = BinaryFlags("dms-server");
  ASSERT_TRUE(flags.count("--kv-memory"));
  for (const nlohmann::json* svc : {&server_, &cpu_["services"]["dms-server"]}) {
    for (auto& [var, value] : (*svc)["environment"].items()) {
      const std::string flag = FlagOfEnvVar(var);
      EXPECT_FALSE(flag.empty()) << var << ": not a DMS_SERVER_ variable";
      EXPECT_TRUE(flags.count(flag)) << var << " -> " << flag << ": dms-server has no such flag";
    }
  }
  EXPECT_FALSE(server_.contains("command")) << "flags belong in the environment";
}

TEST_F(ComposeTest, GpuReservedAndDroppedByTheCpuVariant) {
  const auto& devices = server_["deploy"]["resources"]["reservations"]["devices"];
  ASSERT_EQ(devices.size(), 1u);
  EXPECT_EQ(devices[0]["driver"], "nvidia");
  EXPECT_EQ(devices[0]["count"], 1);
  EXPECT_EQ(devices[0]["capabilities"], nlohmann::json::array({"gpu"}));
  EXPECT_EQ(Env("DMS_SERVER_BACKEND"), "cuda");
  const auto& cpu = cpu_["services"]["dms-server"];
  EXPECT_TRUE(cpu["deploy"].contains("!reset")) << cpu.dump();
  EXPECT_EQ(cpu["environment"]["DMS_SERVER_BACKEND"], "cpu");
  EXPECT_EQ(cpu["build"]["args"]["DMS_CUDA"], "OFF");
}

TEST_F(ComposeTest, PortsAndScrapeTargetMatchTheServerFlags) {
  const int grpc = PortOf(Env("DMS_SERVER_LISTEN"));
  const int metrics = PortOf(Env("DMS_SERVER_METRICS_LISTEN"));
  ASSERT_GT(grpc, 0);
  ASSERT_GT(metrics, 0);
  // Listening on all interfaces, or nothing outside the container reaches it.
  EXPECT_EQ(Env("DMS_SERVER_LISTEN").rfind("0.0.0.0:", 0), 0u);
  EXPECT_EQ(Env("DMS_SERVER_METRICS_LISTEN").rfind("0.0.0.0:", 0), 0u);
  ASSERT_EQ(server_["ports"].size(), 1u);
  EXPECT_EQ(PortOf(server_["ports"][0].get<std::string>()), grpc);
  EXPECT_EQ(server_["expose"], nlohmann::json::array({std::to_string(metrics)}));

  auto prom = LoadYaml(DeployPath("prometheus/prometheus.yml"));
  ASSERT_TRUE(prom.ok()) << prom.status().message();
  const auto& job = (*prom)["scrape_configs"][0];
  EXPECT_EQ(job["job_name"], "dms");  // alerts.yml and the dashboard select job="dms"
  EXPECT_EQ(job["static_configs"][0]["targets"], nlohmann::json::array({"dms-server:" + std::to_string(metrics)}));
}

TEST_F(ComposeTest, StopGracePeriodCoversTheDrain) {
  const double drain = std::stod(Env("DMS_SERVER_DRAIN_TIMEOUT"));
  const double grace = DurationSeconds(server_["stop_grace_period"]);
  // After the drain, the server gives gRPC up to 5 s to shut down.
  EXPECT_GE(grace, drain + 5) << "stop_grace_period " << server_["stop_grace_period"] << " vs --drain-timeout "
                              << drain;
}

TEST_F(ComposeTest, BenchJobUsesRealClientFlags) {
  const auto& bench = compose_["services"]["bench"];
  EXPECT_EQ(bench["entrypoint"], nlohmann::json::array({"dms"}));
  EXPECT_EQ(bench["profiles"], nlohmann::json::array({"bench"}));
  const auto& cmd = bench["command"];
  ASSERT_GE(cmd.size(), 3u);
  EXPECT_EQ(cmd[0], "bench");
  const std::set<std::string> flags = BinaryFlags("dms bench");
  ASSERT_TRUE(flags.count("--concurrency"));
  for (size_t i = 1; i < cmd.size(); ++i) {
    const std::string a = cmd[i];
    if (a.rfind("--", 0) == 0) {
      EXPECT_TRUE(flags.count(a)) << "dms bench has no " << a;
    }
    if (a == "--target") {
      EXPECT_EQ(cmd[i + 1].get<std::string>(), "dms-server:" + std::to_string(PortOf(Env("DMS_SERVER_LISTEN"))));
    }
  }
  EXPECT_EQ(bench["depends_on"]["dms-server"]["condition"], "service_healthy");
}

TEST_F(ComposeTest, PrometheusAndGrafanaMountTheDeployFiles) {
  // Prometheus: the config and the rules it names, side by side.
  EXPECT_EQ(fs::weakly_canonical(MountedFrom("prometheus", "/etc/prometheus/prometheus.yml")),
            fs::weakly_canonical(DeployPath("prometheus/prometheus.yml")));
  auto prom = LoadYaml(DeployPath("prometheus/prometheus.yml"));
  ASSERT_TRUE(prom.ok());
  for (const auto& rf : (*prom)["rule_files"]) {
    const std::string name = rf;
    EXPECT_EQ(fs::weakly_canonical(MountedFrom("prometheus", "/etc/prometheus/" + name)),
              fs::weakly_canonical(DeployPath("prometheus/" + name)));
  }
  const auto& args = compose_["services"]["prometheus"]["command"];
  EXPECT_NE(std::find(args.begin(), args.end(), "--config.file=/etc/prometheus/prometheus.yml"), args.end());

  // Grafana: provisioning and dashboards where the provider looks.
  EXPECT_EQ(fs::weakly_canonical(MountedFrom("grafana", "/etc/grafana/provisioning")),
            fs::weakly_canonical(DeployPath("grafana/provisioning")));
  auto provider = LoadYaml(DeployPath("grafana/provisioning/dashboards/dms-serve.yaml"));
  ASSERT_TRUE(provider.ok());
  const std::string dash_dir = (*provider)["providers"][0]["options"]["path"];
  EXPECT_EQ(fs::weakly_canonical(MountedFrom("grafana", dash_dir)), fs::weakly_canonical(DeployPath("grafana/dashboards")));
  EXPECT_TRUE(fs::exists(DeployPath("grafana/dashboards/dms-serve.json")));

  // The datasource reaches the compose Prometheus, and every panel uses it.
  auto ds = LoadYaml(DeployPath("grafana/provisioning/datasources/prometheus.yaml"));
  ASSERT_TRUE(ds.ok());
  const auto& source = (*ds)["datasources"][0];
  EXPECT_EQ(source["url"], "http://prometheus:9090");
  ASSERT_TRUE(compose_["services"].contains("prometheus"));
  const std::string uid = source["uid"];
  const auto dashboard = nlohmann::json::parse(ReadFile(DeployPath("grafana/dashboards/dms-serve.json")));
  int panels = 0;
  for (const auto& p : dashboard["panels"]) {
    if (p["type"] == "row") continue;
    ++panels;
    EXPECT_EQ(p["datasource"]["uid"], uid) << p["title"];
    for (const auto& t : p["targets"]) EXPECT_EQ(t["datasource"]["uid"], uid) << p["title"];
  }
  EXPECT_GE(panels, 12);
}

}  // namespace
}  // namespace dms::testing
