// Engine (engine.h): creation (load, backend, warm-up) and the forwarding
// front of the pimpl.
#include <algorithm>
#include <span>
#include <utility>
#include <vector>

#include "engine/runtime/engine.h"
#include "engine/runtime/engine_impl.h"
#include "engine/runtime/model_loader.h"

namespace dms {
namespace {

// Runs a few tokens through the backend so the first request does not pay
// for lazy initialisation; in chunks no larger than a step may be (the CUDA
// workspace is sized for it).
Status WarmUp(Backend& backend, int num_tokens, int chunk_tokens) {
  if (num_tokens <= 0) return OkStatus();
  DMS_ASSIGN_OR_RETURN(SeqId seq, backend.CreateSequence());
  std::vector<int32_t> tokens(num_tokens);
  for (int i = 0; i < num_tokens; ++i) tokens[i] = i % backend.config().vocab_size;
  std::vector<float> logits;
  Status st;
  for (int at = 0; at < num_tokens && st.ok(); at += chunk_tokens) {
    const int n = std::min(chunk_tokens, num_tokens - at);
    ForwardChunk chunk{seq, std::span<const int32_t>(tokens.data() + at, n), 1};
    st = backend.Forward(std::span<const ForwardChunk>(&chunk, 1), &logits);
  }
  backend.ReleaseSequence(seq);
  return st;
}

// Read before the engine thread starts: afterwards only that thread touches
// the backend.
ModelDescription Describe(const Backend& backend, std::shared_ptr<const Tokenizer> tokenizer,
                          const EngineOptions& options) {
  ModelDescription m;
  m.config = backend.config();
  m.backend = backend.info();
  m.tokenizer = std::move(tokenizer);
  m.eos_token_ids = options.eos_token_ids;
  m.max_model_len =
      options.max_model_len > 0 ? options.max_model_len : m.config.max_position_embeddings;
  return m;
}

}  // namespace

Engine::Engine(std::unique_ptr<EngineImpl> impl, ModelDescription model)
    : impl_(std::move(impl)), model_(std::move(model)) {}

Engine::~Engine() = default;

StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineSpec& spec, EngineObserver* observer) {
  DMS_ASSIGN_OR_RETURN(LoadedModel loaded,
                       LoadModel(spec.model_dir, spec.tokenizer, spec.read_generation_config));
  DMS_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend,
                       CreateBackend(loaded.checkpoint, spec.backend));
  if (spec.needs_kv_policies && !backend->info().kv_policies) {
    return FailedPreconditionError("--kv-policy " + spec.kv_policy_name + ": the " +
                                   backend->info().name +
                                   " backend does not implement training-free KV policies yet");
  }
  Status warm =
      WarmUp(*backend, spec.warmup_tokens, std::max(1, spec.engine.scheduler.max_batch_tokens));
  if (!warm.ok()) return warm.WithContext("warm-up failed");
  EngineOptions options = spec.engine;
  if (options.eos_token_ids.empty()) options.eos_token_ids = loaded.eos_token_ids;
  std::unique_ptr<Engine> engine =
      CreateWithBackend(std::move(backend), loaded.tokenizer, options, observer);
  engine->model_.generation_defaults = loaded.generation_defaults;
  return engine;
}

std::unique_ptr<Engine> Engine::CreateWithBackend(std::unique_ptr<Backend> backend,
                                                  std::shared_ptr<const Tokenizer> tokenizer,
                                                  const EngineOptions& options,
                                                  EngineObserver* observer) {
  ModelDescription model = Describe(*backend, tokenizer, options);
  auto impl =
      std::make_unique<EngineImpl>(std::move(backend), std::move(tokenizer), options, observer);
  return std::unique_ptr<Engine>(new Engine(std::move(impl), std::move(model)));
}

StatusOr<RequestHandle> Engine::Submit(GenerationRequest request,
                                       std::shared_ptr<RequestSink> sink) {
  return impl_->Submit(std::move(request), std::move(sink));
}

void Engine::Cancel(RequestHandle handle) { impl_->Cancel(handle); }

void Engine::Stop() { impl_->Stop(); }

EngineStats Engine::Stats() const { return impl_->Stats(); }

}  // namespace dms
