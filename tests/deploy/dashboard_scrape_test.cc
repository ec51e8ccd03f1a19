// A real Prometheus (Debian package), configured from
// deploy/prometheus/prometheus.yml with its alert rules, scrapes two real
// dms-server replicas (CPU, tiny checkpoint) under a few seconds of load.
// Then, through Prometheus' HTTP API:
//   * every query of every dashboard panel returns data, for each replica's
//     row and for all replicas together;
//   * every alert rule evaluates without error;
//   * the Prometheus adapter rule behind the autoscaler finds its series and
//     its metrics query returns a value per pod.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <regex>
#include <thread>

#include "tests/deploy/deploy_util.h"
#include "tests/server/server_harness.h"

namespace dms::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kNamespace[] = "dms-test";

std::string RegexEscape(const std::string& s) {
  // A backslash inside a PromQL string is written twice, as Grafana does.
  return std::regex_replace(s, std::regex(R"([.^$|()\[\]{}*+?\\])"), R"(\\$&)");
}

// Sends streaming generations to `target` until `stop`.
void Load(const std::string& target, int stream, std::atomic<bool>* stop, std::atomic<int>* failures) {
  auto stub = v1::Inference::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  for (int n = 0; !*stop; ++n) {
    v1::GenerateRequest req;
    for (int t = 0; t < 30 + 10 * ((n + stream) % 4); ++t) req.add_prompt_token_ids((t * 7 + n + stream) % 200);
    req.set_max_tokens(12);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto reader = stub->Generate(&ctx, req);
    v1::GenerateResponse resp;
    while (reader->Read(&resp)) {
    }
    if (!reader->Finish().ok()) ++*failures;
  }
}

class DashboardScrapeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists("/usr/bin/prometheus")) << "install the Debian package 'prometheus' (scripts/setup.sh)";
    const std::string model = TestDataDir() + "/models/dms-neuron-w16-long";
    for (int i = 0; i < 2; ++i) {
      servers_.push_back(std::make_unique<ServerProcess>(std::vector<std::string>{"--model", model, "--threads", "1"}));
    }
    // The deploy config, pointed at the two loopback replicas with the pod
    // labels Kubernetes service discovery would add.
    auto config = LoadYaml(DeployPath("prometheus/prometheus.yml"));
    ASSERT_TRUE(config.ok()) << config.status().message();
    (*config)["global"]["scrape_interval"] = "1s";
    (*config)["global"]["evaluation_interval"] = "1s";
    for (auto& rf : (*config)["rule_files"]) rf = DeployPath("prometheus/") + rf.get<std::string>();
    auto& job = (*config)["scrape_configs"][0];
    job_ = job["job_name"];
    job["static_configs"] = nlohmann::json::array();
    for (size_t i = 0; i < servers_.size(); ++i) {
      job["static_configs"].push_back(
          {{"targets", {"127.0.0.1:" + std::to_string(servers_[i]->metrics_port())}},
           {"labels", {{"namespace", kNamespace}, {"pod", "dms-server-" + std::to_string(i)}}}});
    }
    WriteFile(tmp_.File("prometheus.yml"), config->dump(2));  // JSON is YAML
    port_ = FreePort();
    prometheus_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{"/usr/bin/prometheus", "--config.file=" + tmp_.File("prometheus.yml"),
                                 "--storage.tsdb.path=" + tmp_.File("data"),
                                 "--web.listen-address=127.0.0.1:" + std::to_string(port_)},
        std::map<std::string, std::string>{}, tmp_.File("prometheus.log"));
  }

  nlohmann::json Api(const std::string& path) { return PrometheusApi(port_, path); }

  // An instant query at `time_`.
  nlohmann::json Query(const std::string& expr) {
    return Api("query?query=" + UrlEncode(expr) + "&time=" + std::to_string(time_));
  }

  std::string PrometheusLog() { return prometheus_->Log(); }

  TempDir tmp_;
  std::vector<std::unique_ptr<ServerProcess>> servers_;
  std::unique_ptr<ChildProcess> prometheus_;
  std::string job_;
  int port_ = 0;
  double time_ = 0;
};

TEST_F(DashboardScrapeTest, EveryPanelReturnsDataAndEveryAlertEvaluates) {
  // Both targets up before the load, so the load is scraped.
  bool up = false;
  for (int i = 0; i < 300 && !up; ++i) {
    auto j = Api("query?query=" + UrlEncode("sum(up{job=\"" + job_ + "\"})"));
    up = !j.is_null() && j["status"] == "success" && !j["data"]["result"].empty() &&
         j["data"]["result"][0]["value"][1] == "2";
    if (!up) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_TRUE(up) << PrometheusLog();

  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> load;
  for (const auto& s : servers_) {
    for (int k = 0; k < 3; ++k) load.emplace_back(Load, s->target(), k, &stop, &failures);
  }
  std::this_thread::sleep_for(std::chrono::seconds(4));
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_EQ(failures.load(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // the last samples are scraped
  time_ = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();

  const auto dashboard = nlohmann::json::parse(ReadFile(DeployPath("grafana/dashboards/dms-serve.json")));
  // The $instance variable: its label_values query, through the API.
  const auto& var = dashboard["templating"]["list"][0];
  ASSERT_EQ(var["name"], "instance");
  std::smatch m;
  const std::string definition = var["definition"];
  ASSERT_TRUE(std::regex_match(definition, m, std::regex(R"(label_values\((\w+), *(\w+)\))"))) << definition;
  auto values = Api("label/" + m[2].str() + "/values?match[]=" + UrlEncode(m[1].str()));
  ASSERT_EQ(values["status"], "success") << values.dump();
  std::vector<std::string> instances = values["data"];
  ASSERT_EQ(instances.size(), 2u) << values.dump();
  // Each replica's row, and "All" as Grafana writes it for =~.
  std::vector<std::string> selections;
  for (const std::string& i : instances) selections.push_back(RegexEscape(i));
  selections.push_back("(" + RegexEscape(instances[0]) + "|" + RegexEscape(instances[1]) + ")");
  // The repeated row is the per-instance part of the dashboard.
  bool repeated_row = false;
  for (const auto& p : dashboard["panels"]) repeated_row |= p["type"] == "row" && p.value("repeat", "") == "instance";
  EXPECT_TRUE(repeated_row) << "no row repeated per instance";

  const auto queries = DashboardQueries(dashboard);
  ASSERT_GE(queries.size(), 25u);
  for (const auto& [title, raw] : queries) {
    for (const std::string& sel : selections) {
      const std::string expr = SubstituteGrafana(raw, sel, "1m");
      SCOPED_TRACE(title + ": " + expr);
      EXPECT_EQ(expr.find('$'), std::string::npos) << "a Grafana variable the test does not know";
      auto j = Query(expr);
      ASSERT_FALSE(j.is_null()) << PrometheusLog();
      ASSERT_EQ(j["status"], "success") << j.dump();
      const auto& result = j["data"]["result"];
      EXPECT_FALSE(result.empty()) << "no data";
      bool finite = false;
      for (const auto& series : result) finite |= std::isfinite(std::stod(series["value"][1].get<std::string>()));
      EXPECT_TRUE(finite) << j.dump();
    }
  }

  // Alert rules: Prometheus evaluated each one (the rule files it loaded are
  // deploy/prometheus's) without error, and each expression runs as a query.
  auto rules = Api("rules?type=alert");
  ASSERT_EQ(rules["status"], "success") << rules.dump();
  std::set<std::string> evaluated;
  for (int attempt = 0; attempt < 50; ++attempt) {
    evaluated.clear();
    for (const auto& g : rules["data"]["groups"]) {
      for (const auto& r : g["rules"]) {
        EXPECT_EQ(r["health"] == "err", false) << r.dump();
        if (r["health"] == "ok" && r.value("lastError", "").empty()) evaluated.insert(r["name"]);
      }
    }
    if (evaluated.size() == 5) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    rules = Api("rules?type=alert");
  }
  EXPECT_EQ(evaluated.size(), 5u) << rules.dump();
  auto file_rules = LoadYaml(DeployPath("prometheus/alerts.yml"));
  ASSERT_TRUE(file_rules.ok());
  for (const auto& g : (*file_rules)["groups"]) {
    for (const auto& r : g["rules"]) {
      auto j = Query(r["expr"]);
      EXPECT_EQ(j["status"], "success") << r["alert"] << ": " << j.dump();
    }
  }
  // TargetDown's selector sees both replicas up.
  auto targets = Query("up{job=\"" + job_ + "\"} == 1");
  EXPECT_EQ(targets["data"]["result"].size(), 2u) << targets.dump();
}

TEST_F(DashboardScrapeTest, AdapterRuleServesTheAutoscalerMetricPerPod) {
  auto adapter = LoadYaml(DeployPath("k8s/prometheus-adapter/adapter-rules.yaml"));
  ASSERT_TRUE(adapter.ok()) << adapter.status().message();
  auto config = nlohmann::json::parse(
      RunCommand("/usr/bin/python3 -c 'import json,sys,yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'",
                 (*adapter)["data"]["config.yaml"].get<std::string>())
          .out);
  const auto& rule = config["rules"][0];
  // The adapter lists the series first...
  nlohmann::json series;
  for (int i = 0; i < 100; ++i) {
    series = Api("series?match[]=" + UrlEncode(rule["seriesQuery"].get<std::string>()));
    if (!series.is_null() && series["status"] == "success" && series["data"].size() == 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(series["data"].size(), 2u) << series.dump() << PrometheusLog();
  for (const auto& s : series["data"]) {
    EXPECT_EQ(s["namespace"], kNamespace);
    EXPECT_EQ(s["__name__"], rule["name"]["as"]);
  }
  // ...then runs the metrics query for the HPA's pods, grouped by pod.
  std::string q = rule["metricsQuery"];
  q = std::regex_replace(q, std::regex("<<\\.Series>>"), series["data"][0]["__name__"].get<std::string>());
  q = std::regex_replace(q, std::regex("<<\\.LabelMatchers>>"),
                         std::string("namespace=\"") + kNamespace + "\",pod=~\"dms-server-0|dms-server-1\"");
  q = std::regex_replace(q, std::regex("<<\\.GroupBy>>"), "pod");
  nlohmann::json j;
  for (int i = 0; i < 50; ++i) {  // until both pods' first samples are in
    time_ = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    j = Query(q);
    if (j["status"] != "success" || j["data"]["result"].size() == 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(j["status"], "success") << q << "\n" << j.dump();
  EXPECT_EQ(j["data"]["result"].size(), 2u) << q << "\n" << j.dump();
  for (const auto& r : j["data"]["result"]) EXPECT_TRUE(r["metric"].contains("pod")) << r.dump();
}

}  // namespace
}  // namespace dms::testing
