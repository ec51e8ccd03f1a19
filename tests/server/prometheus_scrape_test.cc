// A real Prometheus server (Debian package `prometheus`, started here on
// loopback) scrapes dms-server during a load and answers a histogram_quantile
// query over the TTFT histogram.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "tests/server/server_harness.h"

namespace dms {
namespace {

std::string UrlEncode(const std::string& s) {
  std::string out;
  char buf[4];
  for (unsigned char c : s) {
    if (isalnum(c) || c == '_' || c == '.' || c == '-') {
      out += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof(buf), "%%%02X", c);
      out += buf;
    }
  }
  return out;
}

TEST(PrometheusScrape, HistogramQuantileOverTtftDuringLoad) {
  const std::string prom = "/usr/bin/prometheus";
  ASSERT_TRUE(std::filesystem::exists(prom)) << "install the Debian package 'prometheus' (scripts/setup.sh)";
  const std::string model = testing::TestDataDir() + "/models/dms-neuron-w16-long";
  testing::ServerProcess server({"--model", model});

  testing::TempDir tmp;
  const int prom_port = testing::FreePort();
  testing::WriteFile(tmp.File("prometheus.yml"),
                     "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                     "scrape_configs:\n  - job_name: dms\n    static_configs:\n"
                     "      - targets: ['127.0.0.1:" + std::to_string(server.metrics_port()) + "']\n");
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::fopen(tmp.File("prometheus.log").c_str(), "w");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    const std::string cfg = "--config.file=" + tmp.File("prometheus.yml");
    const std::string data = "--storage.tsdb.path=" + tmp.File("data");
    const std::string web = "--web.listen-address=127.0.0.1:" + std::to_string(prom_port);
    execl(prom.c_str(), prom.c_str(), cfg.c_str(), data.c_str(), web.c_str(), nullptr);
    _exit(127);
  }
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      kill(pid, SIGTERM);
      waitpid(pid, nullptr, 0);
    }
  } reaper{pid};

  // Load: a few rounds of concurrent generations while Prometheus scrapes.
  auto stub = server.Stub();
  for (int round = 0; round < 4; ++round) {
    std::vector<std::future<grpc::Status>> fs;
    for (int i = 0; i < 4; ++i) {
      fs.push_back(std::async(std::launch::async, [&stub, i] {
        v1::GenerateRequest req;
        for (int t = 0; t < 40 + 10 * i; ++t) req.add_prompt_token_ids((t * 7 + i) % 200);
        req.set_max_tokens(16);
        grpc::ClientContext ctx;
        auto reader = stub->Generate(&ctx, req);
        v1::GenerateResponse resp;
        while (reader->Read(&resp)) {
        }
        return reader->Finish();
      }));
    }
    for (auto& f : fs) ASSERT_TRUE(f.get().ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
  }

  // Ask Prometheus until the scraped histogram gives a quantile.
  const std::string query =
      "histogram_quantile(0.9, sum by (le) (dms_time_to_first_token_seconds_bucket))";
  double value = -1;
  std::string body;
  for (int i = 0; i < 150 && value <= 0; ++i) {
    body = testing::HttpGet(prom_port, "/api/v1/query?query=" + UrlEncode(query));
    if (!body.empty()) {
      auto j = nlohmann::json::parse(body, nullptr, false);
      if (!j.is_discarded() && j["status"] == "success" && !j["data"]["result"].empty()) {
        value = std::stod(j["data"]["result"][0]["value"][1].get<std::string>());
      }
    }
    if (value <= 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_GT(value, 0) << "last answer: " << body << "\nprometheus log:\n"
                      << testing::ReadFile(tmp.File("prometheus.log"));
  EXPECT_LT(value, 60);
  // The scrape target is up.
  body = testing::HttpGet(prom_port, "/api/v1/query?query=" + UrlEncode("up{job=\"dms\"}"));
  EXPECT_NE(body.find("\"1\""), std::string::npos) << body;
}

}  // namespace
}  // namespace dms
