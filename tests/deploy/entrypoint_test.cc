// The runtime image's moving parts, run here for real: deploy/docker/bundle.sh
// on the real build, the entry point turning DMS_SERVER_* variables into
// dms-server flags, and the Dockerfile's HEALTHCHECK command against the
// server it started.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <sstream>
#include <thread>

#include "tests/deploy/deploy_util.h"
#include "tests/server/server_harness.h"

namespace dms::testing {
namespace {

namespace fs = std::filesystem;

std::string BuildDir() { return fs::path(BinDir()).parent_path().string(); }

std::string Quote(const std::string& s) { return "'" + s + "'"; }

// The shell form of the Dockerfile's HEALTHCHECK (what follows CMD).
std::string HealthcheckCommand() {
  auto df = ParseDockerfile(ReadFile(DeployPath("docker/Dockerfile")), "Dockerfile");
  if (!df.ok()) return "";
  for (const DockerInstruction& i : df->instructions) {
    if (i.keyword == "HEALTHCHECK") return i.args.substr(i.args.find(" CMD ") + 5);
  }
  return "";
}

// Runs the HEALTHCHECK as Docker does (/bin/sh -c) in the image's environment
// with the server's listen address.
CommandResult RunHealthcheck(const std::string& listen) {
  return RunCommand("export DMS_SERVER_LISTEN=" + Quote(listen) + " PATH=" + Quote(BinDir()) +
                    ":\"$PATH\"; " + HealthcheckCommand());
}

TEST(Bundle, CopiesBinariesModuleAndLibrariesButNotTheCRuntime) {
  TempDir out;
  CommandResult r = RunCommand(DeployPath("docker/bundle.sh") + " " + BuildDir() + " " + out.File("opt"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* b : {"dms-server", "dms", "dms-engine"}) {
    EXPECT_TRUE(fs::exists(out.File("opt/bin/") + b)) << b;
  }
  std::set<std::string> libs;
  for (const auto& e : fs::directory_iterator(out.File("opt/lib"))) libs.insert(e.path().filename().string());
  EXPECT_TRUE(libs.count("libgrpc++.so.1.51") || std::any_of(libs.begin(), libs.end(), [](const std::string& l) {
                return l.rfind("libgrpc++.so", 0) == 0;
              }));
  for (const std::string& l : libs) {
    EXPECT_FALSE(l.rfind("libc.so", 0) == 0 || l.rfind("libstdc++", 0) == 0 || l.rfind("libcuda.so", 0) == 0 ||
                 l.rfind("ld-linux", 0) == 0)
        << l << " comes from the base image or the driver";
  }
  if (fs::exists(BuildDir() + "/lib/libdms_cuda.so")) {
    EXPECT_TRUE(libs.count("libdms_cuda.so"));
    EXPECT_TRUE(std::any_of(libs.begin(), libs.end(), [](const std::string& l) { return l.rfind("libcublas", 0) == 0; }));
  }
  // Every library the bundled binaries load resolves inside the bundle, or is
  // one the bundle leaves to the base image.
  for (const char* b : {"bin/dms-server", "bin/dms", "bin/dms-engine"}) {
    CommandResult ldd =
        RunCommand("LD_LIBRARY_PATH=" + out.File("opt/lib") + " ldd " + out.File("opt/") + b);
    ASSERT_EQ(ldd.exit_code, 0) << b;
    std::istringstream in(ldd.out);
    for (std::string line; std::getline(in, line);) {
      if (line.find("=>") == std::string::npos) continue;
      const std::string lib = line.substr(line.find_first_not_of(" \t"));
      const bool base = std::regex_search(lib, std::regex(R"(^(libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)[.-])"));
      if (!base) {
        EXPECT_NE(line.find(out.File("opt/lib")), std::string::npos) << b << ": " << line;
      }
    }
  }
  // And the bundled server runs from there.
  CommandResult help = RunCommand("env -i LD_LIBRARY_PATH=" + out.File("opt/lib") + " " + out.File("opt/bin/dms-server") +
                                  " --help");
  EXPECT_EQ(help.exit_code, 0) << help.err;
}

TEST(Bundle, RefusesAnIncompleteBuild) {
  TempDir build, out;
  fs::create_directories(build.File("bin"));
  fs::copy_file(BinDir() + "/dms-server", build.File("bin/dms-server"));
  CommandResult r = RunCommand(DeployPath("docker/bundle.sh") + " " + build.path() + " " + out.File("opt"));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "bundle: " + build.path() +
                       "/bin/dms: missing (build the dms-server, dms and dms-engine targets)\n");
}

class EntrypointTest : public ::testing::Test {
 protected:
  std::map<std::string, std::string> BaseEnv() {
    return {{"PATH", BinDir() + ":" + std::getenv("PATH")},
            {"DMS_SERVER_MODEL", TestDataDir() + "/models/dms-neuron-w16-long"},
            {"DMS_SERVER_LISTEN", "127.0.0.1:" + std::to_string(FreePort())},
            {"DMS_SERVER_METRICS_LISTEN", "127.0.0.1:" + std::to_string(FreePort())},
            {"DMS_SERVER_READY_FILE", tmp_.File("ready.json")}};
  }
  bool WaitReady(ChildProcess& p) {
    for (int i = 0; i < 3000 && p.Running(); ++i) {
      if (fs::exists(tmp_.File("ready.json"))) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }
  TempDir tmp_;
};

// Variables become flags, arguments win over variables, empty ones are
// skipped, and the HEALTHCHECK passes once the server serves.
TEST_F(EntrypointTest, EnvironmentBecomesFlagsAndHealthcheckPasses) {
  ASSERT_FALSE(HealthcheckCommand().empty());
  auto env = BaseEnv();
  env["DMS_SERVER_BACKEND"] = "cuda";       // overridden by the argument below
  env["DMS_SERVER_LOG_FORMAT"] = "json";
  env["DMS_SERVER_TOKENIZER"] = "";         // empty: not passed
  env["DMS_SERVER_MAX_RUNNING"] = "3";
  ChildProcess server({DeployPath("docker/entrypoint.sh"), "--backend", "cpu"}, env, tmp_.File("log"));
  ASSERT_TRUE(WaitReady(server)) << server.Log();
  auto ready = nlohmann::json::parse(ReadFile(tmp_.File("ready.json")));
  EXPECT_EQ(ready["grpc_port"].get<int>(), PortOf(env["DMS_SERVER_LISTEN"]));
  EXPECT_EQ(ready["metrics_port"].get<int>(), PortOf(env["DMS_SERVER_METRICS_LISTEN"]));
  const std::string scrape = HttpGet(ready["metrics_port"].get<int>(), "/metrics");
  EXPECT_NE(scrape.find("backend=\"cpu\""), std::string::npos) << "the argument should win:\n" << scrape;
  // --log-format=json from the environment: the log is JSON lines.
  EXPECT_NE(server.Log().find("{\""), std::string::npos) << server.Log();

  CommandResult health = RunHealthcheck(env["DMS_SERVER_LISTEN"]);
  EXPECT_EQ(health.exit_code, 0) << health.out << health.err;

  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(30), 0) << server.Log();
  // Nothing listens now: the HEALTHCHECK fails.
  health = RunHealthcheck(env["DMS_SERVER_LISTEN"]);
  EXPECT_NE(health.exit_code, 0);
}

TEST_F(EntrypointTest, UnknownVariableIsRefusedByTheServer) {
  auto env = BaseEnv();
  env["DMS_SERVER_NO_SUCH_FLAG"] = "1";
  ChildProcess server({DeployPath("docker/entrypoint.sh")}, env, tmp_.File("log"));
  const int code = server.Wait(30);
  EXPECT_NE(code, 0);
  EXPECT_NE(code, -1000) << "still running";
  EXPECT_NE(server.Log().find("--no-such-flag=1"), std::string::npos) << server.Log();
}

}  // namespace
}  // namespace dms::testing
