#include "server/server_app.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "engine/model/checkpoint.h"
#include "engine/runtime/engine.h"
#include "engine/runtime/generation_config.h"
#include "common/mapped_file.h"
#include "server/auth.h"
#include "server/health_service.h"
#include "server/inference_service.h"
#include "server/listen_check.h"
#include "server/logging.h"
#include "server/metrics.h"
#include "server/reflection_service.h"

namespace dms::server {
namespace {

constexpr char kServiceName[] = "dms.v1.Inference";

int64_t AvailableHostMemory() {
  std::ifstream f("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (f >> key >> kb >> unit) {
    if (key == "MemAvailable:") return kb * 1024;
  }
  return int64_t{4} << 30;
}

// One line on stderr, like every other refusal of a bad flag or checkpoint.
int StartupError(const Status& st) {
  std::fprintf(stderr, "dms-server: %s\n", st.message().c_str());
  return 1;
}

// The checkpoint's sampling defaults (none with --generation-config ignore).
GenerationDefaults SamplingDefaults(const ModelDescription& model) {
  const GenerationDefaults& d = model.generation_defaults;
  if (!d.empty()) {
    const SamplingParams p = d.Apply(SamplingParams{});
    spdlog::info(
        "sampling defaults from generation_config.json: temperature {} top_p {} top_k {} min_p {} "
        "repetition_penalty {}",
        p.temperature, p.top_p, p.top_k, p.min_p, p.repetition_penalty);
  }
  return d;
}

void WriteReadyFile(const std::string& path, int grpc_port, int metrics_port) {
  if (path.empty()) return;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << nlohmann::json{{"grpc_port", grpc_port}, {"metrics_port", metrics_port}, {"pid", getpid()}}.dump()
      << "\n";
  }
  std::filesystem::rename(tmp, path);  // atomic: readers never see half a file
}

StatusOr<std::string> ReadPem(const std::string& flag, const std::string& path) {
  StatusOr<std::string> pem = ReadFileToString(path);
  if (!pem.ok()) return InvalidArgumentError(flag + " " + path + ": cannot read");
  if (pem->find("-----BEGIN") == std::string::npos) {
    return InvalidArgumentError(flag + " " + path + ": not a PEM file");
  }
  return pem;
}

// Plaintext, TLS (--tls-cert/--tls-key) or mutual TLS (+ --tls-client-ca).
StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(const ServerOptions& o) {
  if (o.tls_cert.empty() && o.tls_key.empty()) {
    if (!o.tls_client_ca.empty()) return InvalidArgumentError("--tls-client-ca needs --tls-cert and --tls-key");
    return grpc::InsecureServerCredentials();
  }
  if (o.tls_cert.empty() || o.tls_key.empty()) {
    return InvalidArgumentError("TLS needs both --tls-cert and --tls-key");
  }
  grpc::SslServerCredentialsOptions ssl;
  grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
  DMS_ASSIGN_OR_RETURN(pair.cert_chain, ReadPem("--tls-cert", o.tls_cert));
  DMS_ASSIGN_OR_RETURN(pair.private_key, ReadPem("--tls-key", o.tls_key));
  DMS_RETURN_IF_ERROR(CheckTlsKeyPair(pair.cert_chain, pair.private_key));
  ssl.pem_key_cert_pairs.push_back(pair);
  if (!o.tls_client_ca.empty()) {
    DMS_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadPem("--tls-client-ca", o.tls_client_ca));
    ssl.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

void BlockTerminationSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

int RunServer(const ServerOptions& o) {
  // Cheap checks first: one clear line for a bad checkpoint or flag.
  StatusOr<ModelConfig> config = LoadModelConfig(o.model);
  if (!config.ok()) return StartupError(config.status());
  if (o.precision != "bf16" && o.precision != "f32") {
    return StartupError(InvalidArgumentError("--precision: expected bf16 or f32, got '" + o.precision + "'"));
  }
  StatusOr<KvPolicyKind> kv_policy = ParseKvPolicy(o.kv_policy, "--kv-policy");
  if (!kv_policy.ok()) return StartupError(kv_policy.status());
  StatusOr<CudaTuning> cuda_tuning = ParseCudaTuning(o.cuda_tuning);
  if (!cuda_tuning.ok()) {
    return StartupError(InvalidArgumentError("--cuda-tuning: " + cuda_tuning.status().message()));
  }
  if (Status st = ValidateCompressionRatio(o.compression_ratio, "--compression-ratio"); !st.ok()) {
    return StartupError(st);
  }
  if (o.generation_config != "auto" && o.generation_config != "ignore") {
    return StartupError(InvalidArgumentError("--generation-config: expected auto or ignore, got '" +
                                             o.generation_config + "'"));
  }
  if (o.generation_config ==
      "auto") {  // read again by LoadModel; a bad file fails here, before listening
    if (StatusOr<GenerationDefaults> g = LoadGenerationConfig(o.model); !g.ok())
      return StartupError(g.status());
  }
  StatusOr<KvMemorySpec> kv_memory = ParseKvMemory(o.kv_memory);
  if (!kv_memory.ok()) return StartupError(kv_memory.status());
  std::vector<double> buckets;
  if (!o.latency_buckets.empty()) {
    StatusOr<std::vector<double>> b = ParseBuckets(o.latency_buckets);
    if (!b.ok()) return StartupError(b.status());
    buckets = *b;
  }

  MetricsOptions mo;
  mo.listen = (o.metrics_listen == "off") ? "" : o.metrics_listen;
  mo.latency_buckets = buckets;
  mo.version = DMS_VERSION;
  mo.backend = o.backend;
  mo.model = std::filesystem::path(o.model).filename().string();
  mo.num_layers = config->num_layers;
  StatusOr<std::unique_ptr<ServerMetrics>> metrics = ServerMetrics::Create(mo);
  if (!metrics.ok()) return StartupError(metrics.status());

  AuthOptions ao;
  ao.token_file = o.auth_token_file;
  ao.health_exempt = !o.auth_health;
  ao.max_streams_per_peer = o.max_streams_per_peer;
  ao.rate_per_token = o.rate_limit;
  ao.rate_burst = o.rate_burst;
  StatusOr<std::unique_ptr<RequestAuthorizer>> auth = RequestAuthorizer::Create(ao);
  if (!auth.ok()) return StartupError(auth.status());
  StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds = MakeServerCredentials(o);
  if (!creds.ok()) return StartupError(creds.status());

  // gRPC first, so health answers NOT_SERVING while the model loads.
  InferenceService service(metrics->get(), auth->get());
  HealthService health(auth->get());
  health.SetStatus(kServiceName, false);
  std::vector<std::unique_ptr<grpc::Service>> reflection =
      MakeReflectionServices(auth->get(), {kServiceName, "grpc.health.v1.Health"});
  // A used port is named in one line before gRPC logs its own failure.
  if (Status st = CheckCanListen("--listen", o.listen); !st.ok()) return StartupError(st);
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  builder.AddListeningPort(o.listen, *creds, &grpc_port);
  // A second server on a used port must fail, not share its connections.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(o.max_message_bytes);
  builder.RegisterService(&service);
  builder.RegisterService(&health);
  for (auto& r : reflection) builder.RegisterService(r.get());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || grpc_port == 0) {
    Status why = CheckCanListen("--listen", o.listen);
    return StartupError(
        why.ok() ? UnavailableError("--listen " + o.listen + ": cannot listen there") : why);
  }
  spdlog::info("listening on {} (port {}, {}), metrics on {}", o.listen, grpc_port,
               o.tls_cert.empty() ? "plaintext" : (o.tls_client_ca.empty() ? "TLS" : "mutual TLS"),
               mo.listen.empty() ? std::string("off") : mo.listen);

  EngineSpec spec;
  spec.model_dir = o.model;
  spec.tokenizer = o.tokenizer;
  spec.read_generation_config = o.generation_config == "auto";
  BackendOptions& bo = spec.backend;
  bo.kind = o.backend;
  bo.num_threads = o.threads;
  bo.kv_block_size = o.kv_block_size;
  bo.kv_cache_bytes = kv_memory->BytesOf(AvailableHostMemory());  // CPU: a share of host memory
  bo.kv_memory_fraction = kv_memory->fraction;                    // CUDA: of free device memory
  // Any policy but auto serves a dense cache (a DMS checkpoint's decisions ignored).
  bo.force_dense = *kv_policy != KvPolicyKind::kAuto;
  bo.precision = o.precision;
  bo.device_sampling = o.device_sampling;
  bo.cuda_tuning = *cuda_tuning;
  bo.max_batch_tokens = o.max_batch_tokens;
  bo.max_sequences = o.max_running + 1;  // + the one being admitted
  spec.needs_kv_policies = IsTrainingFree(*kv_policy);
  spec.kv_policy_name = o.kv_policy;
  spec.warmup_tokens = o.warmup_tokens;
  EngineOptions& eo = spec.engine;
  eo.scheduler.max_batch_tokens = o.max_batch_tokens;
  eo.scheduler.max_running = o.max_running;
  eo.max_queue = static_cast<size_t>(o.max_queued);
  eo.max_model_len = o.max_model_len;
  eo.session_ttl_s = o.session_ttl_s;
  eo.session_pool_fraction = o.session_pool_fraction;
  StatusOr<std::unique_ptr<Engine>> made = Engine::Create(spec, metrics->get());
  if (!made.ok()) return StartupError(made.status());
  Engine& engine = **made;
  const ModelDescription& model = engine.model();
  const BackendInfo& info = model.backend;
  (*metrics)->SetBackend(info.name);

  ServingModel serving;
  serving.engine = &engine;
  serving.tokenizer = model.tokenizer.get();
  serving.model_path = o.model;
  serving.eos_token_ids = model.eos_token_ids;
  serving.limits.default_max_tokens = o.default_max_tokens;
  serving.limits.max_prompt_tokens = o.max_prompt_tokens;
  serving.limits.max_tokens_limit = o.max_tokens_limit;
  serving.limits.max_stop_strings = o.max_stop_strings;
  serving.limits.max_stop_string_bytes = o.max_stop_string_bytes;
  serving.limits.default_kv_policy = *kv_policy;
  serving.limits.default_compression_ratio = o.compression_ratio;
  serving.limits.sampling_defaults = SamplingDefaults(model);
  service.SetModel(serving);  // the engine published initial stats to the metrics
  health.SetStatus(kServiceName, true);
  spdlog::info("serving {} on {} backend ({}): {} layers, DMS {}, KV policy {}{}, KV pool {} blocks x {} tokens, "
               "tokenizer {}",
               LogEscape(o.model, 512), info.name, info.device, config->num_layers,
               config->dms.enabled ? (info.dms_eviction ? "on" : "ignored (dense cache)") : "off", o.kv_policy,
               IsTrainingFree(*kv_policy) ? " at ratio " + std::to_string(o.compression_ratio) : std::string(),
               info.kv_num_blocks, info.kv_block_size, model.tokenizer ? "yes" : "no (token ids only)");
  WriteReadyFile(o.ready_file, grpc_port, (*metrics)->port());

  // Wait for SIGTERM / SIGINT (blocked in every thread; taken here).
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  int sig = 0;
  sigwait(&set, &sig);
  spdlog::info("signal {}: draining (up to {:.0f} s)", sig, o.drain_timeout_s);
  service.SetDraining();
  health.SetStatus(kServiceName, false);
  const auto until = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(o.drain_timeout_s * 1000));
  while (std::chrono::steady_clock::now() < until) {
    const EngineStats st = engine.Stats();
    if (st.running == 0 && st.waiting == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const EngineStats left = engine.Stats();
  if (left.running + left.waiting > 0) {
    spdlog::warn("drain timeout: cancelling {} requests", left.running + left.waiting);
  }
  engine.Stop();  // cancels what is left; their streams finish
  health.Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  spdlog::info("stopped");
  return 0;
}

}  // namespace dms::server
