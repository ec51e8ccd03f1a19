// deploy/prometheus: promtool check config, check rules and test rules pass;
// the unit tests cover every alert both ways and notice a changed threshold.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "tests/deploy/deploy_util.h"

namespace dms::testing {
namespace {

const char kPromtool[] = "/usr/bin/promtool";

CommandResult Promtool(const std::string& args) {
  return RunCommand(std::string(kPromtool) + " " + args + " 2>&1");
}

class PromtoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(kPromtool)) << "install the Debian package 'prometheus' (scripts/setup.sh)";
  }
};

TEST_F(PromtoolTest, CheckConfigPassesWithTheRuleFiles) {
  CommandResult r = Promtool("check config " + DeployPath("prometheus/prometheus.yml"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  // check config also checks the rule files it names.
  EXPECT_NE(r.out.find("SUCCESS: 5 rules found"), std::string::npos) << r.out;
}

TEST_F(PromtoolTest, CheckRulesPasses) {
  CommandResult r = Promtool("check rules " + DeployPath("prometheus/alerts.yml"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
}

TEST_F(PromtoolTest, UnitTestsPass) {
  CommandResult r = Promtool("test rules " + DeployPath("prometheus/alerts_test.yml"));
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("SUCCESS"), std::string::npos) << r.out;
}

TEST_F(PromtoolTest, TheIssuesAlertsExist) {
  auto rules = LoadYaml(DeployPath("prometheus/alerts.yml"));
  ASSERT_TRUE(rules.ok()) << rules.status().message();
  std::set<std::string> names;
  for (const auto& g : (*rules)["groups"]) {
    for (const auto& r : g["rules"]) names.insert(r.value("alert", ""));
  }
  EXPECT_EQ(names, (std::set<std::string>{"DmsTtftP99OverSlo", "DmsQueueSaturated", "DmsKvPoolExhausted",
                                          "DmsErrorRate", "DmsTargetDown"}));
}

// Each alert has a case where it fires and one where it must not.
TEST_F(PromtoolTest, EveryAlertIsTestedFiringAndQuiet) {
  auto rules = LoadYaml(DeployPath("prometheus/alerts.yml"));
  auto tests = LoadYaml(DeployPath("prometheus/alerts_test.yml"));
  ASSERT_TRUE(rules.ok()) << rules.status().message();
  ASSERT_TRUE(tests.ok()) << tests.status().message();
  std::set<std::string> fires, quiet;
  for (const auto& t : (*tests)["tests"]) {
    for (const auto& a : t.value("alert_rule_test", nlohmann::json::array())) {
      const std::string name = a["alertname"];
      (a.value("exp_alerts", nlohmann::json::array()).empty() ? quiet : fires).insert(name);
    }
  }
  for (const auto& g : (*rules)["groups"]) {
    for (const auto& r : g["rules"]) {
      const std::string name = r.value("alert", "");
      EXPECT_TRUE(fires.count(name)) << name << " has no promtool case where it fires";
      EXPECT_TRUE(quiet.count(name)) << name << " has no promtool case where it stays quiet";
    }
  }
}

// The unit tests pin the thresholds: raising the TTFT SLO or the error-rate
// limit in a copy of the rules makes `promtool test rules` fail.
TEST_F(PromtoolTest, UnitTestsNoticeAChangedThreshold) {
  const std::string rules = ReadFile(DeployPath("prometheus/alerts.yml"));
  const std::string tests = ReadFile(DeployPath("prometheus/alerts_test.yml"));
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"[5m]))) > 2", "[5m]))) > 5"}, {"[5m])) > 0.05", "[5m])) > 0.2"}, {"< 0.02", "< 0.001"}}) {
    SCOPED_TRACE(from + " -> " + to);
    const size_t at = rules.find(from);
    ASSERT_NE(at, std::string::npos) << "alerts.yml no longer has '" << from << "'";
    std::string mutated = rules;
    mutated.replace(at, from.size(), to);
    TempDir tmp;
    WriteFile(tmp.File("alerts.yml"), mutated);
    WriteFile(tmp.File("alerts_test.yml"), tests);
    ASSERT_EQ(Promtool("check rules " + tmp.File("alerts.yml")).exit_code, 0);
    CommandResult r = Promtool("test rules " + tmp.File("alerts_test.yml"));
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("FAILED"), std::string::npos) << r.out;
  }
}

}  // namespace
}  // namespace dms::testing
