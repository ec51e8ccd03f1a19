// Sequence: the engine's state for one request, from arrival to finish.
// Owned by the engine thread (Engine / Scheduler); never shared.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/core/sampler.h"
#include "engine/kv/kv_types.h"
#include "engine/runtime/request.h"
#include "engine/runtime/text_output.h"

namespace dms {

enum class SequenceState { kWaiting, kRunning, kFinished };

struct Sequence {
  uint64_t arrival = 0;  // FIFO order among equal priorities
  RequestHandle handle = 0;
  GenerationRequest request;
  std::shared_ptr<RequestSink> sink;
  SequenceState state = SequenceState::kWaiting;

  SeqId kv = -1;                // backend sequence while resident, else -1
  std::vector<int32_t> tokens;  // prompt + generated: what the cache must hold
  int num_prompt = 0;
  int num_cached = 0;           // tokens already forwarded into the cache
  int num_generated = 0;
  int num_reused = 0;           // prompt tokens taken from a session cache
  int preemptions = 0;
  // A training-free KV policy still to run: it runs when the cache holds
  // exactly the prompt, so chunks stop at the prompt's end until then (also
  // when a preempted sequence is recomputed).
  bool kv_policy_pending = false;
  // The backend holds this request's token history for `kv` (sampling on the
  // backend): set before its first sampled step, cleared with the cache.
  bool token_history_set = false;

  std::unique_ptr<Sampler> sampler;
  std::unique_ptr<TextOutput> text;  // null when not detokenizing

  Clock::time_point arrived_at, scheduled_at, first_token_at, last_token_at;
  bool scheduled_once = false;

  int pending() const { return static_cast<int>(tokens.size()) - num_cached; }
  // Most tokens the next chunk may take.
  int chunk_limit() const {
    return kv_policy_pending && num_cached < num_prompt ? num_prompt - num_cached : pending();
  }
  bool decoding() const { return num_generated > 0 && pending() == 1; }
};

}  // namespace dms
