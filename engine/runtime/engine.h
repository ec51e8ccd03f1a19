// Engine: the executor a front end (dms-server, dms-engine generate) serves
// through, after TensorRT-LLM's executor. Engine::Create loads the
// checkpoint and tokenizer, creates the backend and warms it up; Submit
// queues a request and returns an engine-issued handle; Cancel(handle) ends
// it; Stats() is one consistent snapshot; model() says what is served. The
// scheduler, the sequences, the sessions and the backend are behind the
// pimpl (engine_impl.h): a front end never touches them.
//
// Threading: Submit, Cancel, Stats, Stop and model() are thread-safe. A
// request's sink is called on the engine thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "engine/backends/backend_factory.h"
#include "engine/core/backend.h"
#include "engine/kv/kv_capacity.h"
#include "engine/runtime/generation_config.h"
#include "engine/runtime/request.h"
#include "engine/runtime/scheduler_options.h"
#include "engine/tokenizer/tokenizer.h"

namespace dms {

struct EngineOptions {
  SchedulerOptions scheduler;
  std::vector<int32_t> eos_token_ids;  // model's EOS ids (config + tokenizer)
  int max_model_len = 0;               // 0: max_position_embeddings
  size_t max_queue = 1024;             // waiting requests before RESOURCE_EXHAUSTED
  // Session caches (GenerationRequest::session_id): kept at most this long
  // idle, within this share of the KV pool; reclaimed first under pressure.
  double session_ttl_s = 300;
  double session_pool_fraction = 0.5;
};

// Live figures for metrics and GetModelInfo (a consistent snapshot).
struct EngineStats {
  int waiting = 0;
  int running = 0;
  int64_t preemptions = 0;
  int64_t steps = 0;
  int64_t tokens_generated = 0;
  int64_t prompt_tokens_processed = 0;
  KvPoolStats kv;
  double last_step_ms = 0;
  int last_step_tokens = 0;
  int last_step_sequences = 0;
  // retained entries per layer summed over running sequences and KV heads
  std::vector<int64_t> retained_per_layer;
  std::vector<int64_t> logical_per_layer;
  // Their sums over layers, and logical / retained (1 when nothing is cached).
  int64_t logical_entries = 0;
  int64_t retained_entries = 0;
  double compression_ratio = 1.0;
  // The capacity projection's shape (engine/kv/kv_capacity.h) the scheduler
  // admits with; its live_ratio is left at 1 for the caller to set.
  KvFootprint kv_footprint;
  DeviceMemoryInfo device_memory;  // refreshed every 64 steps and when idle
  int sessions = 0;                // idle session caches held
  int64_t session_blocks = 0;      // KV blocks they hold
  int64_t session_hits = 0;        // requests that continued a session's cache
  int64_t session_misses = 0;      // session requests that had to prefill from scratch
  int64_t session_evictions = 0;   // caches dropped (TTL, budget or memory pressure)
};

// Optional hooks for metrics (called on the engine thread).
class EngineObserver {
 public:
  virtual ~EngineObserver() = default;
  virtual void OnStep(const EngineStats& stats) {}
  virtual void OnFinish(const GenerationRequest& request, const RequestFinish& finish) {}
};

// What Engine::Create loads and how.
struct EngineSpec {
  std::string model_dir;
  std::string tokenizer;  // a tokenizer.json or its directory; "" = the model's own
  bool read_generation_config = true;  // generation_config.json supplies sampling defaults
  BackendOptions backend;
  EngineOptions engine;  // eos_token_ids empty: the checkpoint's
  int warmup_tokens = 0;  // forwarded once before serving (lazy initialisation)
  bool needs_kv_policies = false;  // refuse a backend without training-free KV policies
  std::string kv_policy_name;      // named in that refusal
};

// The served model as a front end sees it (fixed after Create).
struct ModelDescription {
  ModelConfig config;
  BackendInfo backend;
  std::shared_ptr<const Tokenizer> tokenizer;  // null: token-id requests only
  std::vector<int32_t> eos_token_ids;
  GenerationDefaults generation_defaults;  // empty without generation_config.json
  int max_model_len = 0;
};

class EngineImpl;

class Engine {
 public:
  // Loads, creates the backend, warms it up and starts the engine thread.
  // Errors name what is wrong (a bad checkpoint, tokenizer, option or a
  // failed warm-up), one line. The engine does not own the observer.
  static StatusOr<std::unique_ptr<Engine>> Create(const EngineSpec& spec,
                                                  EngineObserver* observer = nullptr);
  // Over a backend the caller made (tests, tools); tokenizer may be null.
  static std::unique_ptr<Engine> CreateWithBackend(std::unique_ptr<Backend> backend,
                                                   std::shared_ptr<const Tokenizer> tokenizer,
                                                   const EngineOptions& options,
                                                   EngineObserver* observer = nullptr);
  ~Engine();  // stops the thread; pending requests finish as cancelled

  // Validates and queues a request; returns the handle that cancels it.
  // Errors: INVALID_ARGUMENT (bad field, named), FAILED_PRECONDITION (text
  // asked but no tokenizer), RESOURCE_EXHAUSTED (queue full), ALREADY_EXISTS
  // (the owner has this request_id in flight), UNAVAILABLE (stopping).
  StatusOr<RequestHandle> Submit(GenerationRequest request, std::shared_ptr<RequestSink> sink);
  // Cancels the request Submit returned `handle` for (no-op once it is done);
  // its sink gets finish_reason cancelled. Returns immediately.
  void Cancel(RequestHandle handle);
  // Stops accepting work; finishes in-flight requests as cancelled; joins.
  void Stop();

  EngineStats Stats() const;
  const ModelDescription& model() const { return model_; }

 private:
  Engine(std::unique_ptr<EngineImpl> impl, ModelDescription model);

  std::unique_ptr<EngineImpl> impl_;
  ModelDescription model_;
};

}  // namespace dms
