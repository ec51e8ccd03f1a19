// EngineImpl (engine_impl.h): the engine thread, admission, sampling, sessions.
#include "engine/runtime/engine_impl.h"

#include <algorithm>
#include <random>

#include "engine/runtime/kv_policy_runner.h"

namespace dms {

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kStopString: return "stop_string";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kError: return "error";
  }
  return "error";
}

namespace {
double Ms(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// A request id or session id within its owner's namespace (ids may hold any
// byte but NUL never ends an owner: the owner's length leads).
std::string OwnerScopedKey(const std::string& owner, const std::string& id) {
  return std::to_string(owner.size()) + ":" + owner + id;
}
}  // namespace

EngineImpl::EngineImpl(std::unique_ptr<Backend> backend, std::shared_ptr<const Tokenizer> tokenizer,
               const EngineOptions& options, EngineObserver* observer)
    : backend_(std::move(backend)),
      tokenizer_(std::move(tokenizer)),
      options_(options),
      observer_(observer),
      scheduler_(backend_.get(), options.scheduler) {
  max_model_len_ = options.max_model_len > 0 ? options.max_model_len
                                             : backend_->config().max_position_embeddings;
  const BackendInfo info = backend_->info();
  backend_dms_eviction_ = info.dms_eviction;
  backend_kv_policies_ = info.kv_policies;
  backend_sampling_ = info.sampling;
  backend_name_ = info.name;
  scheduler_.SetReclaimer([this] { return EvictOneSession(); });
  PublishStats(0, 0, 0);  // before the thread starts: stats are valid from the start
  thread_ = std::thread([this] { Loop(); });
}

EngineImpl::~EngineImpl() { Stop(); }

void EngineImpl::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

StatusOr<RequestHandle> EngineImpl::Submit(GenerationRequest request,
                                       std::shared_ptr<RequestSink> sink) {
  const ModelConfig& cfg = backend_->config();
  if (request.prompt_tokens.empty()) return InvalidArgumentError("prompt is empty");
  for (int32_t t : request.prompt_tokens) {
    if (t < 0 || t >= cfg.vocab_size) {
      return InvalidArgumentError("prompt token id " + std::to_string(t) +
                                  " is outside the vocabulary [0, " +
                                  std::to_string(cfg.vocab_size) + ")");
    }
  }
  for (int32_t t : request.stop_token_ids) {
    if (t < 0 || t >= cfg.vocab_size) {
      return InvalidArgumentError("stop token id " + std::to_string(t) +
                                  " is outside the vocabulary [0, " +
                                  std::to_string(cfg.vocab_size) + ")");
    }
  }
  if (request.max_tokens == 0) return InvalidArgumentError("max_tokens must be >= 1, got 0");
  if (static_cast<int64_t>(request.prompt_tokens.size()) >= max_model_len_) {
    return InvalidArgumentError("prompt has " + std::to_string(request.prompt_tokens.size()) +
                                " tokens; the model's limit is " + std::to_string(max_model_len_) +
                                " tokens including at least one generated");
  }
  DMS_RETURN_IF_ERROR(ValidateSamplingParams(request.sampling));
  for (const std::string& s : request.stop_strings) {
    if (s.empty()) return InvalidArgumentError("stop strings must not be empty");
  }
  if (!tokenizer_) {
    if (!request.stop_strings.empty()) {
      return FailedPreconditionError(
          "stop strings need a tokenizer, and this checkpoint has none (tokenizer.json)");
    }
    request.detokenize = false;
  }
  if (!sink) return InvalidArgumentError("no sink");
  DMS_RETURN_IF_ERROR(ValidateCompressionRatio(request.compression_ratio, "compression_ratio"));
  if (request.protect_tokens < 0) {
    return InvalidArgumentError("protect_tokens must be >= 0, got " + std::to_string(request.protect_tokens));
  }
  const std::string policy = KvPolicyName(request.kv_policy);
  if (IsTrainingFree(request.kv_policy)) {
    if (backend_dms_eviction_) {
      return InvalidArgumentError("kv_policy '" + policy +
                                  "' needs a dense cache, but this server evicts by the checkpoint's DMS "
                                  "decisions (start it with --kv-policy dense to compare training-free "
                                  "policies on this checkpoint)");
    }
    if (!backend_kv_policies_) {
      return FailedPreconditionError("kv_policy '" + policy + "': the " + backend_name_ +
                                     " backend does not implement training-free KV policies yet");
    }
    if (!request.session_id.empty()) {
      return InvalidArgumentError("session_id cannot be combined with kv_policy '" + policy +
                                  "': a pruned cache depends on where the turns were cut; send the "
                                  "whole conversation without session_id");
    }
  } else if (request.kv_policy == KvPolicyKind::kDense && backend_dms_eviction_) {
    return InvalidArgumentError(
        "kv_policy 'dense': this server evicts by the checkpoint's DMS decisions; a dense cache is "
        "chosen when the server starts (--kv-policy dense)");
  }

  auto seq = std::make_unique<Sequence>();
  seq->arrived_at = Clock::now();
  seq->tokens = request.prompt_tokens;
  seq->num_prompt = static_cast<int>(request.prompt_tokens.size());
  seq->kv_policy_pending = IsTrainingFree(request.kv_policy);
  const uint64_t seed = request.sampling.seed ? *request.sampling.seed : std::random_device{}();
  seq->sampler = std::make_unique<Sampler>(request.sampling, seed, cfg.vocab_size);
  seq->sampler->AddPromptTokens(request.prompt_tokens);
  if (request.detokenize) {
    seq->text = std::make_unique<TextOutput>(tokenizer_.get(), request.stop_strings);
  }
  seq->sink = std::move(sink);
  RequestHandle handle = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return UnavailableError("engine is shutting down");
    if (stats_.waiting + inbox_.added.size() >= options_.max_queue) {
      return ResourceExhaustedError("request queue is full (" + std::to_string(options_.max_queue) +
                                    " waiting); retry later");
    }
    if (request.request_id.empty()) request.request_id = "req-" + std::to_string(next_arrival_);
    if (!in_flight_ids_.insert(OwnerScopedKey(request.owner, request.request_id)).second) {
      return AlreadyExistsError("request_id '" + request.request_id + "' is already in flight");
    }
    seq->arrival = next_arrival_++;
    seq->handle = seq->arrival;
    in_flight_handles_.insert(seq->handle);
    seq->request = std::move(request);
    handle = seq->handle;
    inbox_.added.push_back(std::move(seq));
  }
  cv_.notify_all();
  return handle;
}

void EngineImpl::Cancel(RequestHandle handle) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!in_flight_handles_.count(handle)) return;
    inbox_.cancelled.push_back(handle);
  }
  cv_.notify_all();
}

EngineStats EngineImpl::Stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

void EngineImpl::Loop() {
  for (;;) {
    Inbox inbox;
    bool stopping;
    {
      std::unique_lock<std::mutex> lock(mu_);
      auto ready = [&] {
        return stopping_ || !inbox_.added.empty() || !inbox_.cancelled.empty() || !scheduler_.idle();
      };
      if (sessions_.empty()) {
        cv_.wait(lock, ready);
      } else {
        cv_.wait_for(lock, std::chrono::seconds(1), ready);  // wake to expire idle sessions
      }
      std::swap(inbox, inbox_);
      stopping = stopping_;
    }
    for (auto& seq : inbox.added) {
      AttachSession(seq.get());
      scheduler_.Add(std::move(seq));
    }
    ExpireSessions();
    if (stopping) {
      for (Sequence* s : scheduler_.All()) {
        Finish(s, FinishReason::kCancelled, UnavailableError("server is shutting down"));
      }
      while (EvictOneSession()) {
      }
      PublishStats(0, 0, 0);
      return;
    }
    HandleCancelsAndDeadlines(inbox.cancelled);
    Step();
  }
}

void EngineImpl::HandleCancelsAndDeadlines(const std::vector<RequestHandle>& cancelled) {
  const Clock::time_point now = Clock::now();
  for (Sequence* s : scheduler_.All()) {
    if (std::find(cancelled.begin(), cancelled.end(), s->handle) != cancelled.end()) {
      Finish(s, FinishReason::kCancelled, CancelledError("cancelled by the client"));
    } else if (s->request.deadline && now >= *s->request.deadline) {
      Finish(s, FinishReason::kCancelled,
             DeadlineExceededError("deadline exceeded after " + std::to_string(s->num_generated) +
                                   " generated tokens"));
    }
  }
}

void EngineImpl::Step() {
  std::vector<PlannedChunk> plan = scheduler_.Schedule();
  for (Sequence* s : scheduler_.TakeUnschedulable()) {
    const KvPoolStats kv = backend_->PoolStats();
    Finish(s, FinishReason::kError,
           ResourceExhaustedError("the request does not fit in the KV cache even alone (" +
                                  std::to_string(s->tokens.size()) + " tokens; pool of " +
                                  std::to_string(kv.num_blocks) + " blocks of " +
                                  std::to_string(kv.block_size) + " tokens)"));
  }
  if (plan.empty()) {
    PublishStats(0, 0, 0);
    return;
  }
  // A sequence starting (or restarting) its prefill under a training-free
  // policy records what the policy's scores need.
  for (auto it = plan.begin(); it != plan.end();) {
    Status st = StartKvCapture(it->seq);
    if (st.ok()) {
      ++it;
      continue;
    }
    Sequence* failed = it->seq;
    it = plan.erase(it);
    Finish(failed, FinishReason::kError, st);
  }
  if (plan.empty()) {
    PublishStats(0, 0, 0);
    return;
  }
  const Clock::time_point start = Clock::now();
  chunks_.clear();
  row_sampling_.assign(plan.size(), RowSampling{});
  int step_tokens = 0;
  for (auto it = plan.begin(); it != plan.end();) {
    Sequence* s = it->seq;
    if (!s->scheduled_once) {
      s->scheduled_once = true;
      s->scheduled_at = start;
    }
    StatusOr<ForwardChunk> chunk = MakeChunk(*it, &row_sampling_[chunks_.size()]);
    if (!chunk.ok()) {
      it = plan.erase(it);
      Finish(s, FinishReason::kError, chunk.status());
      continue;
    }
    chunks_.push_back(*chunk);
    step_tokens += it->num_tokens;
    ++it;
  }
  if (plan.empty()) {
    PublishStats(0, 0, 0);
    return;
  }
  Status st = backend_->Forward(chunks_, &step_out_);
  if (!st.ok()) {
    for (const PlannedChunk& p : plan) Finish(p.seq, FinishReason::kError, st);
    PublishStats(0, 0, 0);
    return;
  }
  std::vector<std::pair<Sequence*, Status>> failed;
  std::unordered_set<const Sequence*> skip;
  for (const PlannedChunk& p : plan) {
    if (!p.seq->decoding()) prompt_tokens_ += p.num_tokens;  // prefill (or recompute)
    p.seq->num_cached += p.num_tokens;
    // The prompt is in the cache: prune it before anything else is appended.
    Status policy = RunPendingKvPolicy(p.seq);
    if (!policy.ok()) {
      failed.emplace_back(p.seq, policy);
      skip.insert(p.seq);
    }
  }
  ++steps_;
  ProcessLogits(plan, step_out_, skip);
  for (auto& [seq, error] : failed) Finish(seq, FinishReason::kError, error);
  PublishStats(Ms(start, Clock::now()), step_tokens, static_cast<int>(plan.size()));
}

StatusOr<ForwardChunk> EngineImpl::MakeChunk(const PlannedChunk& p, RowSampling* sampling) {
  Sequence* s = p.seq;
  ForwardChunk c{s->kv, std::span<const int32_t>(s->tokens.data() + s->num_cached, p.num_tokens),
                 p.wants_logits ? 1 : 0, false, nullptr};
  // Plain greedy requests take the step's per-row summary; the rest sample
  // on the backend when it can (only the token crosses to the host), else
  // bring their row to the host sampler.
  if (!p.wants_logits || !s->sampler->NeedsFullLogits()) return c;
  if (!backend_sampling_) {
    c.full_logits = true;
    return c;
  }
  if (!s->token_history_set) {
    const std::span<const int32_t> tokens(s->tokens);
    DMS_RETURN_IF_ERROR(backend_->SetTokenHistory(s->kv, tokens.first(s->num_prompt),
                                                  tokens.subspan(s->num_prompt, s->num_generated)));
    s->token_history_set = true;
  }
  sampling->params = s->sampler->params();
  sampling->uniform = s->sampler->NextUniform();
  c.sampling = sampling;
  return c;
}

void EngineImpl::ProcessLogits(const std::vector<PlannedChunk>& plan, const ForwardResult& step,
                           const std::unordered_set<const Sequence*>& skip) {
  const int vocab = backend_->config().vocab_size;
  size_t row = 0, full_row = 0;  // into step.summaries, step.logits
  for (size_t i = 0; i < plan.size(); ++i) {
    const PlannedChunk& p = plan[i];
    if (!p.wants_logits) continue;
    Sequence* s = p.seq;
    const size_t r = row++;
    const bool full = chunks_[i].full_logits;
    const float* full_logits = full ? step.logits.data() + full_row++ * vocab : nullptr;
    if (skip.count(s)) continue;
    const GenerationRequest& req = s->request;
    const LogitSummary& summary = step.summaries[r];
    SampledToken tok;
    if (chunks_[i].sampling) {
      tok = step.sampled[r];
      s->sampler->Accept(tok);
    } else if (full) {
      tok = s->sampler->Sample(std::span<const float>(full_logits, vocab), summary);
    } else {
      tok = s->sampler->SampleFromSummary(summary);
    }
    const Clock::time_point now = Clock::now();
    if (s->num_generated == 0) s->first_token_at = now;
    s->last_token_at = now;
    s->tokens.push_back(tok.id);
    ++s->num_generated;
    ++tokens_generated_;

    TokenDelta delta;
    delta.token_ids.push_back(tok.id);
    if (req.sampling.logprobs > 0) {
      delta.logprobs.push_back({tok.id, tok.logprob, std::move(tok.top)});
    }
    const bool is_eos = !req.ignore_eos && std::find(options_.eos_token_ids.begin(),
                                                     options_.eos_token_ids.end(),
                                                     tok.id) != options_.eos_token_ids.end();
    const bool is_stop_id = is_eos || std::find(req.stop_token_ids.begin(), req.stop_token_ids.end(),
                                                tok.id) != req.stop_token_ids.end();
    std::optional<FinishReason> reason;
    std::string matched;
    if (is_stop_id) {
      reason = FinishReason::kStop;  // the stop token's text is not emitted
    } else if (s->text) {
      bool stopped = false;
      delta.text = s->text->Add(tok.id, &stopped, &matched);
      if (stopped) reason = FinishReason::kStopString;
    }
    if (!reason && (s->num_generated >= static_cast<int>(req.max_tokens) ||
                    static_cast<int>(s->tokens.size()) >= max_model_len_)) {
      reason = FinishReason::kLength;
    }
    if (reason && *reason != FinishReason::kStopString && s->text) delta.text += s->text->Flush();
    s->sink->OnDelta(delta);
    if (reason) Finish(s, *reason, OkStatus(), matched);
  }
}

void EngineImpl::Finish(Sequence* seq, FinishReason reason, Status error, std::string stop_matched) {
  RequestFinish f;
  f.reason = reason;
  f.error = std::move(error);
  f.stop_matched = std::move(stop_matched);
  f.prompt_tokens = seq->num_prompt;
  f.completion_tokens = seq->num_generated;
  f.preemptions = seq->preemptions;
  if (seq->kv >= 0) {
    SequenceKvStats kv = backend_->SequenceStats(seq->kv);
    f.kv.logical_tokens = kv.logical_tokens;
    for (const auto& layer : kv.retained)
      for (int r : layer) f.kv.retained_tokens += r;
    f.kv.compression_ratio = kv.compression_ratio;
  }
  const Clock::time_point now = Clock::now();
  if (seq->scheduled_once) f.timing.queue_ms = Ms(seq->arrived_at, seq->scheduled_at);
  if (seq->num_generated > 0) f.timing.ttft_ms = Ms(seq->arrived_at, seq->first_token_at);
  if (seq->num_generated > 1) {
    const double s = Ms(seq->first_token_at, seq->last_token_at) / 1000.0;
    if (s > 0) f.timing.decode_tokens_per_s = (seq->num_generated - 1) / s;
  }
  f.timing.e2e_ms = Ms(seq->arrived_at, now);
  f.cached_prompt_tokens = seq->num_reused;
  const bool completed = reason == FinishReason::kStop || reason == FinishReason::kLength ||
                         reason == FinishReason::kStopString;
  const bool keep = completed && !seq->request.session_id.empty() && seq->kv >= 0;
  std::unique_ptr<Sequence> owned = scheduler_.Remove(seq, /*keep_cache=*/keep);
  if (!owned) return;
  if (keep && !KeepSession(owned.get())) backend_->ReleaseSequence(owned->kv);
  owned->sink->OnFinish(f);
  if (observer_) observer_->OnFinish(owned->request, f);
  std::lock_guard<std::mutex> lock(mu_);
  in_flight_ids_.erase(OwnerScopedKey(owned->request.owner, owned->request.request_id));
  in_flight_handles_.erase(owned->handle);
}

void EngineImpl::PublishStats(double step_ms, int step_tokens, int step_seqs) {
  EngineStats& st = scratch_stats_;  // reused: its vectors keep their capacity
  st.waiting = static_cast<int>(scheduler_.waiting().size());
  st.running = static_cast<int>(scheduler_.running().size());
  st.preemptions = scheduler_.num_preemptions();
  st.steps = steps_;
  st.tokens_generated = tokens_generated_;
  st.prompt_tokens_processed = prompt_tokens_;
  st.kv = backend_->PoolStats();
  st.last_step_ms = step_ms;
  st.last_step_tokens = step_tokens;
  st.last_step_sequences = step_seqs;
  if (steps_ % 64 == 0 || step_seqs == 0 || !last_device_memory_.available) {
    last_device_memory_ = backend_->DeviceMemory();
  }
  st.device_memory = last_device_memory_;
  const int layers = backend_->config().num_layers;
  st.retained_per_layer.assign(layers, 0);
  st.logical_per_layer.assign(layers, 0);
  for (const auto& s : scheduler_.running()) {
    if (s->kv >= 0) backend_->AddLayerStats(s->kv, st.retained_per_layer, st.logical_per_layer);
  }
  st.sessions = static_cast<int>(sessions_.size());
  st.session_blocks = 0;
  for (const auto& [id, sess] : sessions_) st.session_blocks += SessionBlocks(sess.kv);
  st.session_hits = session_hits_;
  st.session_misses = session_misses_;
  st.session_evictions = session_evictions_;
  st.logical_entries = st.retained_entries = 0;
  for (int l = 0; l < layers; ++l) {
    st.logical_entries += st.logical_per_layer[l];
    st.retained_entries += st.retained_per_layer[l];
  }
  st.compression_ratio = st.retained_entries > 0 ? static_cast<double>(st.logical_entries) /
                                                       st.retained_entries
                                                 : 1.0;
  st.kv_footprint = scheduler_.footprint();
  if (st.retained_entries > 0) scheduler_.set_live_compression(st.compression_ratio);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_ = st;
  }
  if (observer_) observer_->OnStep(st);
}

// ---- Training-free KV policies (docs/kv-policies.md).

Status EngineImpl::StartKvCapture(Sequence* seq) {
  if (!seq->kv_policy_pending || seq->num_cached != 0) return OkStatus();
  return backend_->SetKvCapture(seq->kv, KvCaptureFor(seq->request.kv_policy, KvPolicyParams{}));
}

Status EngineImpl::RunPendingKvPolicy(Sequence* seq) {
  if (!seq->kv_policy_pending || seq->num_cached != seq->num_prompt) return OkStatus();
  seq->kv_policy_pending = false;
  Status st = ApplyKvPolicy(*backend_, seq->kv, MakeKvPolicySpec(seq->request, seq->num_prompt));
  return st.ok() ? st : st.WithContext("kv_policy '" + std::string(KvPolicyName(seq->request.kv_policy)) + "'");
}

// ---- Sessions: a finished turn's compressed cache, kept for the next turn.

int EngineImpl::SessionBlocks(SeqId kv) const { return backend_->SequenceBlocks(kv); }

void EngineImpl::AttachSession(Sequence* seq) {
  if (seq->request.session_id.empty()) return;
  auto it = sessions_.find(OwnerScopedKey(seq->request.owner, seq->request.session_id));
  if (it == sessions_.end()) {
    ++session_misses_;
    return;
  }
  Session sess = std::move(it->second);
  sessions_.erase(it);
  const std::vector<int32_t>& prompt = seq->tokens;
  // Continue only when the new prompt extends exactly what the cache holds
  // (a DMS cache cannot be cut back to a shorter prefix: later tokens'
  // decisions have already evicted entries).
  const bool extends = prompt.size() > sess.tokens.size() &&
                       std::equal(sess.tokens.begin(), sess.tokens.end(), prompt.begin());
  if (!extends) {
    backend_->ReleaseSequence(sess.kv);
    ++session_misses_;
    ++session_evictions_;
    return;
  }
  seq->kv = sess.kv;
  seq->num_cached = static_cast<int>(sess.tokens.size());
  seq->num_reused = seq->num_cached;
  ++session_hits_;
}

bool EngineImpl::KeepSession(Sequence* seq) {
  Session sess;
  sess.kv = seq->kv;
  sess.tokens.assign(seq->tokens.begin(), seq->tokens.begin() + seq->num_cached);
  sess.last_used = Clock::now();
  // A newer turn under the same id replaces the old cache.
  const std::string key = OwnerScopedKey(seq->request.owner, seq->request.session_id);
  auto old = sessions_.find(key);
  if (old != sessions_.end()) {
    backend_->ReleaseSequence(old->second.kv);
    sessions_.erase(old);
    ++session_evictions_;
  }
  const int64_t budget =
      static_cast<int64_t>(options_.session_pool_fraction * backend_->PoolStats().num_blocks);
  const int64_t mine = SessionBlocks(sess.kv);
  if (mine > budget) {
    ++session_evictions_;
    return false;
  }
  int64_t held = 0;
  for (const auto& [id, s] : sessions_) held += SessionBlocks(s.kv);
  while (held + mine > budget && !sessions_.empty()) {
    EvictOneSession();
    held = 0;
    for (const auto& [id, s] : sessions_) held += SessionBlocks(s.kv);
  }
  sessions_.emplace(key, std::move(sess));
  return true;
}

bool EngineImpl::EvictOneSession() {
  if (sessions_.empty()) return false;
  auto lru = sessions_.begin();
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
    if (it->second.last_used < lru->second.last_used) lru = it;
  }
  backend_->ReleaseSequence(lru->second.kv);
  sessions_.erase(lru);
  ++session_evictions_;
  return true;
}

void EngineImpl::ExpireSessions() {
  const Clock::time_point now = Clock::now();
  const auto ttl = std::chrono::duration<double>(options_.session_ttl_s);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (now - it->second.last_used > ttl) {
      backend_->ReleaseSequence(it->second.kv);
      it = sessions_.erase(it);
      ++session_evictions_;
    } else {
      ++it;
    }
  }
}

}  // namespace dms
