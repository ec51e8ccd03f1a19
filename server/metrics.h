// Prometheus metrics of the server (names are a fixed contract; see
// docs/metrics.md). Served by prometheus-cpp's exposer on --metrics-listen.
//
// Threading: all methods are thread-safe (prometheus-cpp metrics are atomic;
// DecodeRate has its own lock). OnStep/OnFinish run on the
// engine thread, ObserveInterToken on the engine thread via stream sinks.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/runtime/engine.h"
#include "server/decode_rate.h"

namespace dms::server {

struct MetricsOptions {
  std::string listen = "127.0.0.1:9400";  // "" disables the HTTP endpoint
  std::vector<double> latency_buckets;    // seconds; empty = defaults (1 ms .. 60 s)
  std::string version, backend, model;    // dms_build_info labels
  bool cpu_process_memory = true;         // dms_device_memory_bytes from /proc (CPU backend)
  int num_layers = 0;
};

// "0.001,0.01,1" -> sorted buckets; INVALID_ARGUMENT naming the bad item.
StatusOr<std::vector<double>> ParseBuckets(const std::string& text);
std::vector<double> DefaultLatencyBuckets();

class ServerMetrics : public EngineObserver {
 public:
  // Starts the HTTP endpoint. INVALID_ARGUMENT / UNAVAILABLE when it cannot bind.
  static StatusOr<std::unique_ptr<ServerMetrics>> Create(const MetricsOptions& options);
  ~ServerMetrics() override;

  void OnStep(const EngineStats& stats) override;
  void OnFinish(const GenerationRequest& request, const RequestFinish& finish) override;
  void ObserveInterToken(double seconds) { itl_->Observe(seconds); }
  // The backend in use (dms_build_info's backend label; "auto" until known).
  void SetBackend(const std::string& name);
  // Device memory from the backend (CUDA) when it reports it.
  void SetDeviceMemory(int64_t used, int64_t total, int64_t peak, const std::string& device);

  // The port actually bound (for --metrics-listen with port 0).
  int port() const;

 private:
  explicit ServerMetrics(const MetricsOptions& options);
  void UpdateProcessMemory();

  MetricsOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<DecodeRate> decode_rate_;
  std::unique_ptr<prometheus::Exposer> exposer_;

  prometheus::Histogram* ttft_ = nullptr;
  prometheus::Histogram* itl_ = nullptr;
  prometheus::Histogram* e2e_ = nullptr;
  prometheus::Histogram* queue_ = nullptr;
  prometheus::Histogram* prefill_ = nullptr;
  prometheus::Histogram* batch_size_ = nullptr;
  prometheus::Counter* prompt_tokens_ = nullptr;
  prometheus::Counter* generation_tokens_ = nullptr;
  prometheus::Counter* preemptions_ = nullptr;
  prometheus::Family<prometheus::Counter>* finished_ = nullptr;
  prometheus::Gauge* running_ = nullptr;
  prometheus::Gauge* waiting_ = nullptr;
  prometheus::Gauge* kv_used_ = nullptr;
  prometheus::Gauge* kv_free_ = nullptr;
  prometheus::Gauge* kv_logical_ = nullptr;
  prometheus::Gauge* kv_retained_ = nullptr;
  prometheus::Gauge* kv_ratio_ = nullptr;
  std::vector<prometheus::Gauge*> kv_ratio_layer_;
  prometheus::Family<prometheus::Gauge>* device_memory_ = nullptr;
  prometheus::Family<prometheus::Gauge>* build_info_ = nullptr;
  prometheus::Gauge* build_info_series_ = nullptr;
  prometheus::Gauge* sessions_ = nullptr;
  prometheus::Gauge* session_blocks_ = nullptr;
  prometheus::Counter* session_hits_ = nullptr;
  prometheus::Counter* session_misses_ = nullptr;
  prometheus::Counter* session_evictions_ = nullptr;

  std::mutex mu_;  // guards the fields below
  int64_t last_preemptions_ = 0;
  int64_t last_prompt_tokens_ = 0;
  int64_t last_generated_ = 0;
  int64_t last_session_hits_ = 0, last_session_misses_ = 0, last_session_evictions_ = 0;
};

}  // namespace dms::server
