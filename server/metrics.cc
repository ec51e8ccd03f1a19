#include "server/metrics.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "server/listen_check.h"

namespace dms::server {
namespace {

// Reads "Key:   123 kB" from a /proc file, in bytes (0 when absent).
int64_t ProcKb(const char* path, const std::string& key) {
  std::ifstream f(path);
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      return std::atoll(line.c_str() + key.size() + 1) * 1024;
    }
  }
  return 0;
}

}  // namespace

std::vector<double> DefaultLatencyBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5,
          0.75,  1.0,    2.5,   5.0,  7.5,   10.0, 20.0,  30.0, 60.0};
}

StatusOr<std::vector<double>> ParseBuckets(const std::string& text) {
  std::vector<double> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const double v = std::strtod(item.c_str(), &end);
    if (item.empty() || *end != '\0' || !(v > 0)) {
      return InvalidArgumentError("--latency-buckets: '" + item + "' is not a positive number");
    }
    out.push_back(v);
  }
  if (out.empty()) return InvalidArgumentError("--latency-buckets: no buckets given");
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

ServerMetrics::ServerMetrics(const MetricsOptions& options)
    : options_(options), registry_(std::make_shared<prometheus::Registry>()) {
  using namespace prometheus;
  const auto buckets = options.latency_buckets.empty() ? DefaultLatencyBuckets() : options.latency_buckets;
  auto hist = [&](const char* name, const char* help, const Histogram::BucketBoundaries& b) {
    return &BuildHistogram().Name(name).Help(help).Register(*registry_).Add({}, b);
  };
  ttft_ = hist("dms_time_to_first_token_seconds", "Arrival to first generated token", buckets);
  itl_ = hist("dms_inter_token_latency_seconds", "Time between streamed tokens of a request", buckets);
  e2e_ = hist("dms_e2e_request_latency_seconds", "Arrival to the end of a request", buckets);
  queue_ = hist("dms_request_queue_time_seconds", "Arrival to first scheduled step", buckets);
  prefill_ = hist("dms_request_prefill_time_seconds", "First scheduled step to first token", buckets);
  batch_size_ = hist("dms_batch_size", "Sequences per engine step",
                     {1, 2, 4, 8, 16, 32, 64, 128, 256, 512});
  auto counter = [&](const char* name, const char* help) {
    return &BuildCounter().Name(name).Help(help).Register(*registry_).Add({});
  };
  prompt_tokens_ = counter("dms_prompt_tokens_total", "Prompt tokens prefilled (recomputation included)");
  generation_tokens_ = counter("dms_generation_tokens_total", "Tokens generated");
  preemptions_ = counter("dms_preemptions_total", "Sequences preempted (recomputed later)");
  finished_ = &BuildCounter().Name("dms_requests_finished_total").Help("Finished requests by reason")
                   .Register(*registry_);
  for (const char* r : {"stop", "length", "stop_string", "cancelled", "error"}) finished_->Add({{"reason", r}});
  auto gauge = [&](const char* name, const char* help) {
    return &BuildGauge().Name(name).Help(help).Register(*registry_).Add({});
  };
  running_ = gauge("dms_requests_running", "Requests resident in the engine");
  waiting_ = gauge("dms_requests_waiting", "Requests queued for admission");
  decode_rate_ = std::make_shared<DecodeRate>();
  auto& kv_blocks = BuildGauge().Name("dms_kv_blocks").Help("KV pool blocks").Register(*registry_);
  kv_used_ = &kv_blocks.Add({{"state", "used"}});
  kv_free_ = &kv_blocks.Add({{"state", "free"}});
  auto& kv_tokens = BuildGauge().Name("dms_kv_tokens")
                        .Help("Running sequences' tokens: logical (x layers x KV heads) vs retained cache entries")
                        .Register(*registry_);
  kv_logical_ = &kv_tokens.Add({{"kind", "logical"}});
  kv_retained_ = &kv_tokens.Add({{"kind", "retained"}});
  sessions_ = gauge("dms_sessions", "Idle session caches kept for a next turn (session_id)");
  session_blocks_ = gauge("dms_session_kv_blocks", "KV blocks held by idle session caches");
  session_hits_ = counter("dms_session_hits_total", "Requests that continued a session's cache");
  session_misses_ = counter("dms_session_misses_total", "Session requests that prefilled from scratch");
  session_evictions_ = counter("dms_session_evictions_total", "Session caches dropped (TTL, budget, pressure)");
  kv_ratio_ = gauge("dms_kv_compression_ratio", "Logical / retained KV entries over running sequences");
  auto& per_layer = BuildGauge().Name("dms_kv_compression_ratio_layer")
                        .Help("Logical / retained KV entries per layer").Register(*registry_);
  for (int l = 0; l < options.num_layers; ++l) {
    kv_ratio_layer_.push_back(&per_layer.Add({{"layer", std::to_string(l)}}));
    kv_ratio_layer_.back()->Set(1);
  }
  device_memory_ = &BuildGauge().Name("dms_device_memory_bytes")
                        .Help("Device memory (GPU on CUDA; the process on the CPU backend)")
                        .Register(*registry_);
  build_info_ = &BuildGauge().Name("dms_build_info").Help("Build and model").Register(*registry_);
  SetBackend(options.backend);
  kv_ratio_->Set(1);
}

StatusOr<std::unique_ptr<ServerMetrics>> ServerMetrics::Create(const MetricsOptions& options) {
  std::unique_ptr<ServerMetrics> m(new ServerMetrics(options));
  if (!options.listen.empty()) {
    try {
      m->exposer_ = std::make_unique<prometheus::Exposer>(options.listen);
    } catch (const std::exception& e) {
      // CivetWeb's own message says nothing useful ("null context ...").
      Status why = CheckCanListen("--metrics-listen", options.listen);
      return why.ok() ? UnavailableError("--metrics-listen " + options.listen +
                                         ": cannot serve metrics there")
                      : why;
    }
    m->exposer_->RegisterCollectable(m->registry_);
    m->exposer_->RegisterCollectable(m->decode_rate_);
  }
  if (options.cpu_process_memory) m->UpdateProcessMemory();
  return m;
}

ServerMetrics::~ServerMetrics() = default;

void ServerMetrics::SetBackend(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  if (build_info_series_) build_info_->Remove(build_info_series_);
  build_info_series_ = &build_info_->Add(
      {{"version", options_.version}, {"backend", name}, {"model", options_.model}});
  build_info_series_->Set(1);
}

int ServerMetrics::port() const {
  if (!exposer_) return 0;
  auto ports = exposer_->GetListeningPorts();
  return ports.empty() ? 0 : ports.front();
}

void ServerMetrics::UpdateProcessMemory() {
  const std::string device = "cpu-process";
  device_memory_->Add({{"kind", "used"}, {"device", device}}).Set(ProcKb("/proc/self/status", "VmRSS"));
  device_memory_->Add({{"kind", "peak"}, {"device", device}}).Set(ProcKb("/proc/self/status", "VmHWM"));
  device_memory_->Add({{"kind", "total"}, {"device", device}}).Set(ProcKb("/proc/meminfo", "MemTotal"));
}

void ServerMetrics::SetDeviceMemory(int64_t used, int64_t total, int64_t peak, const std::string& device) {
  device_memory_->Add({{"kind", "used"}, {"device", device}}).Set(used);
  device_memory_->Add({{"kind", "total"}, {"device", device}}).Set(total);
  device_memory_->Add({{"kind", "peak"}, {"device", device}}).Set(peak);
}

void ServerMetrics::OnStep(const EngineStats& st) {
  running_->Set(st.running);
  waiting_->Set(st.waiting);
  kv_used_->Set(st.kv.blocks_used);
  kv_free_->Set(st.kv.blocks_free);
  for (size_t l = 0; l < st.retained_per_layer.size(); ++l) {
    if (l < kv_ratio_layer_.size()) {
      kv_ratio_layer_[l]->Set(st.retained_per_layer[l] > 0
                                  ? static_cast<double>(st.logical_per_layer[l]) / st.retained_per_layer[l]
                                  : 1.0);
    }
  }
  kv_logical_->Set(st.logical_entries);
  kv_retained_->Set(st.retained_entries);
  // Nothing cached: nothing compressed (not the last request's ratio).
  kv_ratio_->Set(st.compression_ratio);
  if (st.last_step_sequences > 0) batch_size_->Observe(st.last_step_sequences);

  std::lock_guard<std::mutex> lock(mu_);
  preemptions_->Increment(st.preemptions - last_preemptions_);
  last_preemptions_ = st.preemptions;
  prompt_tokens_->Increment(st.prompt_tokens_processed - last_prompt_tokens_);
  last_prompt_tokens_ = st.prompt_tokens_processed;
  generation_tokens_->Increment(st.tokens_generated - last_generated_);
  last_generated_ = st.tokens_generated;
  sessions_->Set(st.sessions);
  session_blocks_->Set(st.session_blocks);
  session_hits_->Increment(st.session_hits - last_session_hits_);
  last_session_hits_ = st.session_hits;
  session_misses_->Increment(st.session_misses - last_session_misses_);
  last_session_misses_ = st.session_misses;
  session_evictions_->Increment(st.session_evictions - last_session_evictions_);
  last_session_evictions_ = st.session_evictions;
  decode_rate_->Add(std::chrono::steady_clock::now(), st.tokens_generated);
  if (st.device_memory.available) {
    if (options_.cpu_process_memory) {
      // A GPU backend reports device memory: drop the process series.
      options_.cpu_process_memory = false;
      for (const char* kind : {"used", "peak", "total"}) {
        device_memory_->Remove(&device_memory_->Add({{"kind", kind}, {"device", "cpu-process"}}));
      }
    }
    SetDeviceMemory(st.device_memory.used, st.device_memory.total, st.device_memory.peak, st.device_memory.device);
  } else if (options_.cpu_process_memory && st.steps % 64 == 0) {
    UpdateProcessMemory();
  }
}

void ServerMetrics::OnFinish(const GenerationRequest& request, const RequestFinish& f) {
  finished_->Add({{"reason", FinishReasonName(f.reason)}}).Increment();
  if (f.completion_tokens > 0) {
    ttft_->Observe(f.timing.ttft_ms / 1000.0);
    prefill_->Observe(std::max(0.0, f.timing.ttft_ms - f.timing.queue_ms) / 1000.0);
  }
  queue_->Observe(f.timing.queue_ms / 1000.0);
  e2e_->Observe(f.timing.e2e_ms / 1000.0);
}

}  // namespace dms::server
