// deploy/docker/Dockerfile, checked with what runs without a Docker engine:
// its stages and build arguments are real, what it copies exists and is not
// ignored, its build steps are CI's own scripts and configure the targets it
// builds, and its runtime settings name real flags, ports and commands.
#include <fnmatch.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <regex>
#include <sstream>

#include "tests/deploy/deploy_util.h"

namespace dms::testing {
namespace {

namespace fs = std::filesystem;

class DockerfileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto parsed = ParseDockerfile(ReadFile(DeployPath("docker/Dockerfile")), "Dockerfile");
    ASSERT_TRUE(parsed.ok()) << parsed.status().message();
    df_ = *parsed;
    build_ = df_.StageIndex("build");
    runtime_ = df_.StageIndex("runtime");
    ASSERT_GE(build_, 0) << "no stage 'build'";
    ASSERT_GE(runtime_, 0) << "no stage 'runtime'";
  }

  // ENV of a stage, all instructions merged.
  std::map<std::string, std::string> Env(int stage) const {
    std::map<std::string, std::string> env;
    for (const DockerInstruction* i : df_.Find("ENV", stage)) {
      for (auto& [k, v] : ParseKeyValues(i->args)) env[k] = v;
    }
    return env;
  }

  // ARG names visible in a stage (declared globally or in it).
  std::set<std::string> Args(int stage) const {
    std::set<std::string> args;
    for (auto& [k, v] : df_.global_args) args.insert(k);
    for (const DockerInstruction* i : df_.Find("ARG", stage)) {
      for (auto& [k, v] : ParseKeyValues(i->args)) args.insert(k);
    }
    return args;
  }

  // Build-context sources of the COPY instructions without --from.
  std::vector<std::string> CopySources() const {
    std::vector<std::string> out;
    for (const DockerInstruction& i : df_.instructions) {
      if (i.keyword != "COPY" && i.keyword != "ADD") continue;
      std::vector<std::string> w = SplitWords(i.args);
      if (std::any_of(w.begin(), w.end(), [](const std::string& s) { return s.rfind("--from=", 0) == 0; })) {
        continue;
      }
      std::erase_if(w, [](const std::string& s) { return s.rfind("--", 0) == 0; });
      for (size_t k = 0; k + 1 < w.size(); ++k) out.push_back(w[k]);
    }
    return out;
  }

  DockerFile df_;
  int build_ = -1, runtime_ = -1;
};

TEST_F(DockerfileTest, StagesAreCudaBuildAndSlimRuntimeLast) {
  // `docker build` without --target makes the last stage: the runtime image.
  EXPECT_EQ(runtime_, static_cast<int>(df_.stages.size()) - 1);
  EXPECT_EQ(df_.stages[build_].base, "${BUILD_IMAGE}");
  EXPECT_EQ(df_.stages[runtime_].base, "${RUNTIME_IMAGE}");
  const std::string build_image = df_.global_args["BUILD_IMAGE"];
  const std::string runtime_image = df_.global_args["RUNTIME_IMAGE"];
  EXPECT_NE(build_image.find("nvidia/cuda:13."), std::string::npos) << build_image;
  EXPECT_NE(build_image.find("-devel-"), std::string::npos) << build_image;
  EXPECT_NE(runtime_image.find("nvidia/cuda:13."), std::string::npos) << runtime_image;
  EXPECT_NE(runtime_image.find("-base-"), std::string::npos) << "the slim CUDA image: " << runtime_image;
  // Every COPY --from names an earlier stage.
  for (const DockerInstruction& i : df_.instructions) {
    for (const std::string& w : SplitWords(i.args)) {
      if (i.keyword != "COPY" || w.rfind("--from=", 0) != 0) continue;
      const int from = df_.StageIndex(w.substr(7));
      EXPECT_GE(from, 0) << "line " << i.line << ": no stage " << w;
      EXPECT_LT(from, i.stage) << "line " << i.line;
    }
  }
}

TEST_F(DockerfileTest, ComposeBuildsARealTargetWithDeclaredArgs) {
  auto compose = LoadYaml(DeployPath("compose/compose.yaml"));
  auto cpu = LoadYaml(DeployPath("compose/compose.cpu.yaml"));
  ASSERT_TRUE(compose.ok()) << compose.status().message();
  ASSERT_TRUE(cpu.ok()) << cpu.status().message();
  const auto& build = (*compose)["services"]["dms-server"]["build"];
  EXPECT_EQ(build["dockerfile"], "deploy/docker/Dockerfile");
  EXPECT_EQ(fs::weakly_canonical(DeployPath("compose/") + build["context"].get<std::string>()).string(), RepoRoot());
  EXPECT_GE(df_.StageIndex(build["target"]), 0) << build["target"];
  const std::set<std::string> declared = [&] {
    std::set<std::string> s = Args(build_);
    for (const std::string& a : Args(runtime_)) s.insert(a);
    return s;
  }();
  for (auto& [arg, value] : (*cpu)["services"]["dms-server"]["build"]["args"].items()) {
    EXPECT_TRUE(declared.count(arg)) << "compose.cpu.yaml sets build arg " << arg << ", which the Dockerfile lacks";
  }
}

// Docker's .dockerignore semantics, enough for ours: the last pattern that
// matches the path or one of its parents decides; '!' re-includes.
bool Ignored(const std::vector<std::string>& patterns, const std::string& path) {
  bool ignored = false;
  for (std::string p : patterns) {
    const bool negate = !p.empty() && p[0] == '!';
    if (negate) p = p.substr(1);
    while (p.size() > 1 && p.back() == '/') p.pop_back();
    bool match = false;
    for (size_t end = path.find('/'); !match; end = path.find('/', end + 1)) {
      match = fnmatch(p.c_str(), path.substr(0, end).c_str(), FNM_PATHNAME) == 0;
      if (end == std::string::npos) break;
    }
    if (match) ignored = !negate;
  }
  return ignored;
}

TEST_F(DockerfileTest, CopiedSourcesExistAndAreInTheContext) {
  std::vector<std::string> patterns;
  std::istringstream in(ReadFile(DeployPath("docker/Dockerfile.dockerignore")));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line[0] != '#') patterns.push_back(line);
  }
  const std::vector<std::string> sources = CopySources();
  ASSERT_FALSE(sources.empty());
  for (std::string src : sources) {
    while (src.size() > 1 && src.back() == '/') src.pop_back();
    EXPECT_TRUE(fs::exists(RepoRoot() + "/" + src)) << "COPY " << src << ": not in the repository";
    EXPECT_FALSE(Ignored(patterns, src)) << "COPY " << src << ": excluded by Dockerfile.dockerignore";
  }
  // The ignore file does keep the rest out (build trees are gigabytes).
  EXPECT_TRUE(Ignored(patterns, "build/bin/dms-server"));
  EXPECT_TRUE(Ignored(patterns, ".git/HEAD"));
  EXPECT_TRUE(Ignored(patterns, "tests/data/models/qwen3-plain/model.safetensors"));
}

// The build stage runs CI's own steps only: scripts/setup.sh, CMake, and the
// bundling script that entrypoint_test.cc runs on the real build.
TEST_F(DockerfileTest, BuildStepsAreTheScriptsCiRuns) {
  const auto runs = df_.Find("RUN", build_);
  ASSERT_FALSE(runs.empty());
  std::set<std::string> programs;
  for (const DockerInstruction* r : runs) {
    std::string rest = r->args;
    for (size_t p; (p = rest.find("&&")) != std::string::npos || !rest.empty();) {
      const std::string cmd = rest.substr(0, p);
      rest = p == std::string::npos ? "" : rest.substr(p + 2);
      const std::vector<std::string> w = SplitWords(cmd);
      if (w.empty()) continue;
      programs.insert(w[0]);
      EXPECT_TRUE(w[0] == "scripts/setup.sh" || w[0] == "cmake" || w[0] == "deploy/docker/bundle.sh")
          << "line " << r->line << ": '" << w[0] << "' is not a step CI runs";
      if (w[0] != "cmake") {
        EXPECT_TRUE(fs::exists(RepoRoot() + "/" + w[0]) && access((RepoRoot() + "/" + w[0]).c_str(), X_OK) == 0)
            << w[0] << ": missing or not executable";
      }
    }
  }
  EXPECT_TRUE(programs.count("scripts/setup.sh"));
  EXPECT_TRUE(programs.count("cmake"));
  EXPECT_TRUE(programs.count("deploy/docker/bundle.sh"));
  EXPECT_TRUE(df_.Find("RUN", runtime_).empty()) << "the runtime stage should only copy the bundle";
}

// Configures exactly the tree the build stage copies, with the Dockerfile's
// own CMake options, and finds every target it builds.
TEST_F(DockerfileTest, CopiedTreeConfiguresWithTheTargetsItBuilds) {
  std::string configure, build;
  for (const DockerInstruction* r : df_.Find("RUN", build_)) {
    std::string rest = r->args;
    for (size_t p; (p = rest.find("&&")) != std::string::npos || !rest.empty();) {
      const std::string cmd = rest.substr(0, p);
      rest = p == std::string::npos ? "" : rest.substr(p + 2);
      if (cmd.find("cmake -S") != std::string::npos) configure = cmd;
      if (cmd.find("cmake --build") != std::string::npos) build = cmd;
    }
  }
  ASSERT_FALSE(configure.empty()) << "no 'cmake -S' step";
  ASSERT_FALSE(build.empty()) << "no 'cmake --build' step";
  const bool have_nvcc = fs::exists("/usr/local/cuda/bin/nvcc") || RunCommand("command -v nvcc").exit_code == 0;
  // ${DMS_CUDA}: the Dockerfile's default (ON) where this machine has nvcc.
  const std::string cuda = have_nvcc ? "ON" : "OFF";
  ASSERT_NE(configure.find("${DMS_CUDA}"), std::string::npos) << configure;
  configure = std::regex_replace(configure, std::regex(R"(\$\{DMS_CUDA\})"), cuda);

  TempDir ctx;
  for (std::string src : CopySources()) {
    while (src.size() > 1 && src.back() == '/') src.pop_back();
    fs::create_directories(fs::path(ctx.File(src)).parent_path());
    fs::copy(RepoRoot() + "/" + src, ctx.File(src), fs::copy_options::recursive);
  }
  CommandResult r = RunCommand("cd " + ctx.path() + " && " + configure + " 2>&1");
  ASSERT_EQ(r.exit_code, 0) << configure << "\n" << r.out;
  CommandResult help = RunCommand("cd " + ctx.path() + " && cmake --build build --target help");
  ASSERT_EQ(help.exit_code, 0) << help.err;
  const std::set<std::string> targets = [&] {
    std::set<std::string> t;
    std::istringstream in(help.out);
    for (std::string line; std::getline(in, line);) t.insert(line.substr(0, line.find(':')));
    return t;
  }();
  const std::vector<std::string> words = SplitWords(build);
  auto it = std::find(words.begin(), words.end(), "--target");
  ASSERT_NE(it, words.end()) << build;
  int count = 0;
  for (++it; it != words.end() && it->rfind("-", 0) != 0; ++it, ++count) {
    EXPECT_TRUE(targets.count(*it)) << "cmake --build --target " << *it << ": no such target";
  }
  EXPECT_EQ(count, 3) << build;
  // The CUDA module is built with dms-server when CUDA is on.
  if (have_nvcc) {
    EXPECT_TRUE(targets.count("dms_cuda"));
  }
}

TEST_F(DockerfileTest, RuntimeRunsAsNonRootWithTheModelAsAVolume) {
  const auto users = df_.Find("USER", runtime_);
  ASSERT_EQ(users.size(), 1u);
  const std::string user = users[0]->args.substr(0, users[0]->args.find(':'));
  EXPECT_TRUE(std::regex_match(user, std::regex("[1-9][0-9]*"))) << "numeric non-root uid expected: " << user;
  const auto env = Env(runtime_);
  ASSERT_TRUE(env.count("DMS_SERVER_MODEL"));
  const auto volumes = df_.Find("VOLUME", runtime_);
  ASSERT_EQ(volumes.size(), 1u);
  const std::vector<std::string> dirs = SplitWords(volumes[0]->args);
  EXPECT_NE(std::find(dirs.begin(), dirs.end(), env.at("DMS_SERVER_MODEL")), dirs.end())
      << "DMS_SERVER_MODEL=" << env.at("DMS_SERVER_MODEL") << " is not a VOLUME";
}

TEST_F(DockerfileTest, RuntimeEnvNamesRealFlagsAndExposesTheirPorts) {
  const std::set<std::string> flags = BinaryFlags("dms-server");
  ASSERT_TRUE(flags.count("--model"));
  const auto env = Env(runtime_);
  int n = 0;
  for (auto& [var, value] : env) {
    const std::string flag = FlagOfEnvVar(var);
    if (flag.empty()) continue;
    ++n;
    EXPECT_TRUE(flags.count(flag)) << "ENV " << var << " -> " << flag << ": dms-server has no such flag";
  }
  EXPECT_GE(n, 4);
  std::set<int> exposed;
  for (const DockerInstruction* e : df_.Find("EXPOSE", runtime_)) {
    for (const std::string& p : SplitWords(e->args)) exposed.insert(std::stoi(p));
  }
  EXPECT_EQ(exposed, (std::set<int>{PortOf(env.at("DMS_SERVER_LISTEN")), PortOf(env.at("DMS_SERVER_METRICS_LISTEN"))}));
  // The bundle's bin is on PATH and its lib on the loader path.
  EXPECT_EQ(env.at("PATH").rfind("/opt/dms/bin:", 0), 0u) << env.at("PATH");
  EXPECT_EQ(env.at("LD_LIBRARY_PATH").rfind("/opt/dms/lib", 0), 0u) << env.at("LD_LIBRARY_PATH");
}

TEST_F(DockerfileTest, EntrypointAndHealthcheckUseShippedCommands) {
  const auto entry = df_.Find("ENTRYPOINT", runtime_);
  ASSERT_EQ(entry.size(), 1u);
  const std::vector<std::string> argv = SplitWords(entry[0]->args);
  ASSERT_EQ(argv.size(), 1u);
  // It is the entry point script, copied into the bundle's bin.
  bool copied = false;
  for (const DockerInstruction* c : df_.Find("COPY", runtime_)) {
    const auto w = SplitWords(c->args);
    copied |= w.size() == 2 && w[0] == "deploy/docker/entrypoint.sh" && w[1] == "/opt/dms/bin/" + argv[0];
  }
  EXPECT_TRUE(copied) << "ENTRYPOINT " << argv[0] << " is not deploy/docker/entrypoint.sh in /opt/dms/bin";

  const auto hc = df_.Find("HEALTHCHECK", runtime_);
  ASSERT_EQ(hc.size(), 1u);
  const std::string& args = hc[0]->args;
  const size_t cmd_at = args.find(" CMD ");
  ASSERT_NE(cmd_at, std::string::npos) << args;
  for (const std::string& opt : SplitWords(args.substr(0, cmd_at))) {
    const std::string name = opt.substr(0, opt.find('='));
    EXPECT_TRUE(name == "--interval" || name == "--timeout" || name == "--start-period" || name == "--retries" ||
                name == "--start-interval")
        << "HEALTHCHECK option " << opt;
  }
  const std::vector<std::string> cmd = SplitWords(args.substr(cmd_at + 5));
  ASSERT_GE(cmd.size(), 2u);
  EXPECT_EQ(cmd[0], "dms");
  EXPECT_EQ(cmd[1], "health");
  const std::set<std::string> health_flags = BinaryFlags("dms health");
  ASSERT_TRUE(health_flags.count("--target"));
  for (const std::string& w : cmd) {
    if (w.rfind("--", 0) == 0) {
      EXPECT_TRUE(health_flags.count(w.substr(0, w.find('=')))) << "dms health has no " << w;
    }
  }
  // entrypoint_test.cc runs this command against a real server.
}

}  // namespace
}  // namespace dms::testing
