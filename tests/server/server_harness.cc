#include "tests/server/server_harness.h"

#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace dms::testing {

ServerProcess::ServerProcess(const std::vector<std::string>& args, bool wait_ready) {
  std::vector<std::string> argv = {BinDir() + "/dms-server", "--ready-file", dir_.File("ready.json")};
  // Loopback port 0 unless the test picks its own address.
  if (std::find(args.begin(), args.end(), "--listen") == args.end()) {
    argv.insert(argv.end(), {"--listen", "127.0.0.1:0"});
  }
  if (std::find(args.begin(), args.end(), "--metrics-listen") == args.end()) {
    argv.insert(argv.end(), {"--metrics-listen", "127.0.0.1:0"});
  }
  argv.insert(argv.end(), args.begin(), args.end());
  const std::string log = dir_.File("server.log");
  pid_ = fork();
  if (pid_ == 0) {
    // Child: stderr and stdout to the log file, default signal mask.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    FILE* f = std::fopen(log.c_str(), "w");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  if (wait_ready && !WaitReady()) {
    throw std::runtime_error("dms-server did not become ready; log:\n" + Log());
  }
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

bool ServerProcess::WaitReady(double timeout_s) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  const std::string ready = dir_.File("ready.json");
  while (std::chrono::steady_clock::now() < until) {
    if (std::filesystem::exists(ready)) {
      auto j = nlohmann::json::parse(ReadFile(ready));
      grpc_port_ = j["grpc_port"];
      metrics_port_ = j["metrics_port"];
      return true;
    }
    int status = 0;
    if (pid_ > 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::string ServerProcess::Log() const { return ReadFile(dir_.File("server.log")); }

namespace {
int64_t ProcStatusKb(pid_t pid, const std::string& key) {
  std::istringstream in(ReadFile("/proc/" + std::to_string(pid) + "/status"));
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(key + ":", 0) == 0) return std::atoll(line.c_str() + key.size() + 1) * 1024;
  }
  return -1;
}
}  // namespace

int64_t ServerProcess::RssBytes() const { return ProcStatusKb(pid_, "VmRSS"); }
int64_t ServerProcess::PeakRssBytes() const { return ProcStatusKb(pid_, "VmHWM"); }

std::shared_ptr<grpc::Channel> ServerProcess::Channel() const {
  return grpc::CreateChannel(target(), grpc::InsecureChannelCredentials());
}

std::unique_ptr<v1::Inference::Stub> ServerProcess::Stub() const {
  return v1::Inference::NewStub(Channel());
}

void ServerProcess::Signal(int sig) {
  if (pid_ > 0) kill(pid_, sig);
}

int ServerProcess::Wait(double timeout_s) { return WaitForChild(&pid_, timeout_s); }

bool ServerProcess::Alive() {
  int status = 0;
  if (pid_ <= 0) return false;
  if (waitpid(pid_, &status, WNOHANG) == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

RawCallResult RawCall(const std::shared_ptr<grpc::Channel>& channel, const std::string& method,
                      const std::string& request_bytes, const std::string& token,
                      double deadline_s) {
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(static_cast<int64_t>(deadline_s * 1000)));
  if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
  grpc::CompletionQueue cq;
  void* tag = nullptr;
  bool ok = false;
  // Each operation is waited for before the next: one tag in flight.
  auto wait = [&] { return cq.Next(&tag, &ok) && ok; };
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call = stub.PrepareCall(&ctx, method, &cq);
  RawCallResult result;
  call->StartCall(nullptr);
  if (wait()) {
    grpc::Slice slice(request_bytes);
    grpc::ByteBuffer request(&slice, 1);
    call->Write(request, nullptr);
    if (wait()) {
      call->WritesDone(nullptr);
      wait();
    }
    for (;;) {
      grpc::ByteBuffer response;
      call->Read(&response, nullptr);
      if (!wait()) break;
      std::vector<grpc::Slice> slices;
      (void)response.Dump(&slices);
      std::string bytes;
      for (const grpc::Slice& s : slices)
        bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
      result.responses.push_back(std::move(bytes));
    }
  }
  call->Finish(&result.status, nullptr);
  cq.Next(&tag, &ok);
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  return result;
}

TestCerts::TestCerts() {
  const std::string d = dir.path();
  const std::string script = "set -e; cd '" + d +
                             "';"
                             "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem "
                             "-days 2 -subj /CN=dms-test-ca 2>/dev/null;"
                             "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext;"
                             "openssl req -newkey rsa:2048 -nodes -keyout server.key -out "
                             "server.csr -subj /CN=localhost 2>/dev/null;"
                             "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key "
                             "-CAcreateserial -out server.pem -days 2 "
                             "-extfile san.ext 2>/dev/null;"
                             "openssl req -newkey rsa:2048 -nodes -keyout client.key -out "
                             "client.csr -subj /CN=client 2>/dev/null;"
                             "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key "
                             "-CAcreateserial -out client.pem -days 2 2>/dev/null";
  const CommandResult r = RunCommand(script);
  if (r.exit_code != 0) throw std::runtime_error("openssl failed: " + r.err);
  ca = d + "/ca.pem";
  server_cert = d + "/server.pem";
  server_key = d + "/server.key";
  client_cert = d + "/client.pem";
  client_key = d + "/client.key";
}

std::shared_ptr<grpc::Channel> TestCerts::Channel(const std::string& target,
                                                  bool with_client_cert) const {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ReadFile(ca);
  if (with_client_cert) {
    o.pem_cert_chain = ReadFile(client_cert);
    o.pem_private_key = ReadFile(client_key);
  }
  return grpc::CreateChannel(target, grpc::SslCredentials(o));
}

std::string HttpGet(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  const std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  (void)!write(fd, req.data(), req.size());
  std::string resp;
  char buf[65536];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) resp.append(buf, n);
  close(fd);
  const size_t body = resp.find("\r\n\r\n");
  return body == std::string::npos ? "" : resp.substr(body + 4);
}

double MetricValue(const std::string& scrape, const std::string& name_and_labels) {
  std::istringstream in(scrape);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name_and_labels + " ", 0) == 0) {
      return std::stod(line.substr(name_and_labels.size() + 1));
    }
  }
  return -1;
}

std::string ScrapeUntil(int metrics_port, const std::string& name_and_labels, double value) {
  std::string scrape;
  for (int i = 0; i < 200; ++i) {
    scrape = HttpGet(metrics_port, "/metrics");
    if (MetricValue(scrape, name_and_labels) == value) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return scrape;
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const int port = ntohs(addr.sin_port);
  close(fd);
  return port;
}

}  // namespace dms::testing
