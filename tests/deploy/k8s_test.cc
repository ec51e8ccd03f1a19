// deploy/k8s: the kustomize base lists every manifest, and the manifests agree
// with each other (names, selectors, ports), with the server's flags, with the
// image (user, model directory) and with the Prometheus adapter rule.
#include <gtest/gtest.h>

#include <filesystem>

#include "tests/deploy/deploy_util.h"

namespace dms::testing {
namespace {

namespace fs = std::filesystem;

class K8sTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto k = LoadYaml(DeployPath("k8s/kustomization.yaml"));
    ASSERT_TRUE(k.ok()) << k.status().message();
    kustomization_ = *k;
    for (const auto& r : kustomization_["resources"]) {
      auto doc = LoadYaml(DeployPath("k8s/") + r.get<std::string>());
      ASSERT_TRUE(doc.ok()) << doc.status().message();
      objects_[(*doc)["kind"].get<std::string>() + "/" + (*doc)["metadata"]["name"].get<std::string>()] = *doc;
    }
    ASSERT_TRUE(objects_.count("Deployment/dms-server"));
    deployment_ = objects_["Deployment/dms-server"];
    pod_ = deployment_["spec"]["template"];
    container_ = pod_["spec"]["containers"][0];
    env_ = ReadEnvFile(DeployPath("k8s/") + kustomization_["configMapGenerator"][0]["envs"][0].get<std::string>());
  }
  int ContainerPort(const std::string& name) const {
    for (const auto& p : container_["ports"]) {
      if (p["name"] == name) return p["containerPort"];
    }
    return -1;
  }
  std::map<std::string, nlohmann::json> objects_;
  nlohmann::json kustomization_, deployment_, pod_, container_;
  std::map<std::string, std::string> env_;
};

TEST_F(K8sTest, KustomizationListsEveryManifest) {
  std::set<std::string> listed, present;
  for (const auto& r : kustomization_["resources"]) listed.insert(r.get<std::string>());
  for (const auto& e : fs::directory_iterator(DeployPath("k8s"))) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && e.path().extension() == ".yaml" && name != "kustomization.yaml") present.insert(name);
  }
  EXPECT_EQ(listed, present);
  for (auto& [key, obj] : objects_) {
    EXPECT_TRUE(obj.contains("apiVersion")) << key;
    EXPECT_EQ(obj["metadata"]["labels"]["app.kubernetes.io/name"], "dms-server") << key;
  }
  EXPECT_EQ(objects_.size(), 5u);  // Deployment, 2 Services, PDB, HPA
}

TEST_F(K8sTest, FlagsComeFromTheGeneratedConfigMapAndAreReal) {
  const std::string generated = kustomization_["configMapGenerator"][0]["name"];
  ASSERT_EQ(container_["envFrom"].size(), 1u);
  EXPECT_EQ(container_["envFrom"][0]["configMapRef"]["name"], generated);
  const std::set<std::string> flags = BinaryFlags("dms-server");
  ASSERT_TRUE(flags.count("--drain-timeout"));
  for (auto& [var, value] : env_) {
    EXPECT_TRUE(flags.count(FlagOfEnvVar(var))) << var << " -> " << FlagOfEnvVar(var) << ": no such flag";
  }
  EXPECT_FALSE(container_.contains("args")) << "flags belong in the ConfigMap";
  EXPECT_EQ(env_["DMS_SERVER_BACKEND"], "cuda");
}

TEST_F(K8sTest, PortsProbesAndServicesAgreeWithTheFlags) {
  const int grpc = PortOf(env_["DMS_SERVER_LISTEN"]);
  const int metrics = PortOf(env_["DMS_SERVER_METRICS_LISTEN"]);
  EXPECT_EQ(env_["DMS_SERVER_LISTEN"].rfind("0.0.0.0:", 0), 0u);
  EXPECT_EQ(env_["DMS_SERVER_METRICS_LISTEN"].rfind("0.0.0.0:", 0), 0u);
  EXPECT_EQ(ContainerPort("grpc"), grpc);
  EXPECT_EQ(ContainerPort("metrics"), metrics);
  // Native gRPC probes on the health service: readiness and startup on the
  // inference service (NOT_SERVING while loading and draining), liveness on
  // the server as a whole. live_config_test.cc asks a real server for both.
  for (const char* probe : {"startupProbe", "readinessProbe"}) {
    EXPECT_EQ(container_[probe]["grpc"]["port"], grpc) << probe;
    EXPECT_EQ(container_[probe]["grpc"]["service"], "dms.v1.Inference") << probe;
  }
  EXPECT_EQ(container_["livenessProbe"]["grpc"]["port"], grpc);
  EXPECT_EQ(container_["livenessProbe"]["grpc"].value("service", ""), "");
  EXPECT_EQ(pod_["metadata"]["annotations"]["prometheus.io/port"], std::to_string(metrics));
  EXPECT_EQ(pod_["metadata"]["annotations"]["prometheus.io/scrape"], "true");

  const auto& labels = pod_["metadata"]["labels"];
  EXPECT_EQ(deployment_["spec"]["selector"]["matchLabels"], labels);
  for (const char* name : {"Service/dms-server", "Service/dms-server-headless"}) {
    ASSERT_TRUE(objects_.count(name)) << name;
    const auto& svc = objects_[name]["spec"];
    EXPECT_EQ(svc["selector"], labels) << name;
    for (const auto& p : svc["ports"]) {
      EXPECT_EQ(p["port"], ContainerPort(p["targetPort"])) << name << " " << p.dump();
    }
  }
  EXPECT_EQ(objects_["Service/dms-server-headless"]["spec"]["clusterIP"], "None");
  EXPECT_EQ(objects_["Service/dms-server-headless"]["spec"]["ports"][0]["name"], "grpc");
  EXPECT_EQ(objects_["PodDisruptionBudget/dms-server"]["spec"]["selector"]["matchLabels"], labels);
}

TEST_F(K8sTest, OneGpuNonRootModelMountedReadOnly) {
  EXPECT_EQ(container_["resources"]["limits"]["nvidia.com/gpu"], 1);
  EXPECT_EQ(container_["resources"]["requests"]["nvidia.com/gpu"], 1);
  // The image's numeric user (Dockerfile USER).
  auto df = ParseDockerfile(ReadFile(DeployPath("docker/Dockerfile")), "Dockerfile");
  ASSERT_TRUE(df.ok());
  const auto user = df->Find("USER", df->StageIndex("runtime"));
  ASSERT_EQ(user.size(), 1u);
  EXPECT_EQ(pod_["spec"]["securityContext"]["runAsUser"], std::stoi(user[0]->args));
  EXPECT_EQ(pod_["spec"]["securityContext"]["runAsNonRoot"], true);
  bool model_mounted = false;
  for (const auto& m : container_["volumeMounts"]) {
    if (m["mountPath"] == env_["DMS_SERVER_MODEL"]) model_mounted = m.value("readOnly", false);
  }
  EXPECT_TRUE(model_mounted) << "no read-only mount at DMS_SERVER_MODEL=" << env_["DMS_SERVER_MODEL"];
}

// SIGTERM comes after the preStop hook; the server then drains for up to
// --drain-timeout and gives gRPC 5 s to stop. All of it must fit in the
// grace period or Kubernetes kills streams mid-response.
TEST_F(K8sTest, GracePeriodCoversPreStopDrainAndShutdown) {
  const auto& pre_stop = container_["lifecycle"]["preStop"]["exec"]["command"];
  ASSERT_EQ(pre_stop.size(), 2u);
  EXPECT_EQ(pre_stop[0], "sleep");
  const double sleep_s = std::stod(pre_stop[1].get<std::string>());
  const double drain_s = std::stod(env_["DMS_SERVER_DRAIN_TIMEOUT"]);
  const double grace = pod_["spec"]["terminationGracePeriodSeconds"];
  EXPECT_GE(grace, sleep_s + drain_s + 5) << "preStop " << sleep_s << " + drain " << drain_s << " + 5";
  // Rollouts add a replica before removing one.
  EXPECT_EQ(deployment_["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
}

TEST_F(K8sTest, AutoscalerUsesTheAdapterRulesMetric) {
  const auto& hpa = objects_["HorizontalPodAutoscaler/dms-server"]["spec"];
  EXPECT_EQ(hpa["scaleTargetRef"]["kind"], "Deployment");
  EXPECT_EQ(hpa["scaleTargetRef"]["name"], deployment_["metadata"]["name"]);
  ASSERT_EQ(hpa["metrics"].size(), 1u);
  EXPECT_EQ(hpa["metrics"][0]["type"], "Pods");
  const std::string metric = hpa["metrics"][0]["pods"]["metric"]["name"];
  EXPECT_EQ(metric, "dms_requests_waiting");

  auto adapter = LoadYaml(DeployPath("k8s/prometheus-adapter/adapter-rules.yaml"));
  ASSERT_TRUE(adapter.ok()) << adapter.status().message();
  auto config = nlohmann::json::parse(
      RunCommand("/usr/bin/python3 -c 'import json,sys,yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'",
                 (*adapter)["data"]["config.yaml"].get<std::string>())
          .out,
      nullptr, false);
  ASSERT_FALSE(config.is_discarded());
  ASSERT_EQ(config["rules"].size(), 1u);
  const auto& rule = config["rules"][0];
  EXPECT_EQ(rule["name"]["as"], metric);
  EXPECT_EQ(rule["resources"]["overrides"]["pod"]["resource"], "pod");
  EXPECT_EQ(rule["resources"]["overrides"]["namespace"]["resource"], "namespace");
  EXPECT_EQ(MetricRefs(rule["seriesQuery"]), std::set<std::string>{metric});
  // dashboard_scrape_test.cc runs the rule's queries on a real Prometheus.
}

// Full kustomize build where kubectl is installed (it is no Debian 12
// package this project installs; the checks above do not need it).
TEST_F(K8sTest, KustomizeBuilds) {
  if (RunCommand("command -v kubectl").exit_code != 0) GTEST_SKIP() << "kubectl not installed";
  CommandResult r = RunCommand("kubectl kustomize " + DeployPath("k8s"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The generated ConfigMap's hashed name replaced the reference.
  EXPECT_NE(r.out.find("name: dms-server-flags-"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("name: dms-server-flags\n"), std::string::npos) << r.out;
  CommandResult adapter = RunCommand("kubectl kustomize " + DeployPath("k8s/prometheus-adapter"));
  EXPECT_EQ(adapter.exit_code, 0) << adapter.err;
}

}  // namespace
}  // namespace dms::testing
