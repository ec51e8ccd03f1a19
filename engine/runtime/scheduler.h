// Scheduler: continuous batching with chunked prefill, DMS-aware admission
// and preemption by recomputation (nano-vllm / vLLM style, one screen long).
//
// Each step it builds a plan under three budgets: tokens per step, sequences
// per step, and free KV blocks (asked of the backend, which knows how many
// blocks a chunk may need given the live retained counts: DMS frees slots as
// tokens leave the window, so a long context costs far less than dense).
//   1. running decodes (one token each), most urgent first; when the pool
//      cannot hold a decode, the least urgent running sequence is preempted
//      (its cache released; it is recomputed later, which DMS's chunking
//      invariance makes exact);
//   2. running prefills continue, in chunks;
//   3. waiting requests are admitted in (priority, arrival) order while
//      budgets allow, keeping a small watermark of blocks free for decodes,
//      and only when the blocks their whole prompt is projected to hold fit:
//      per (layer, KV head) about min(P, W+1) + (P - W - 1) / r entries,
//      r the LIVE compression ratio of the running sequences (1 until
//      measured, i.e. dense), so DMS's savings become admitted streams
//      without assuming the nominal 8x.
// Threading: engine thread only.
#pragma once

#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <vector>

#include "engine/core/backend.h"
#include "engine/kv/kv_capacity.h"
#include "engine/runtime/scheduler_options.h"
#include "engine/runtime/sequence.h"

namespace dms {

struct PlannedChunk {
  Sequence* seq = nullptr;
  int num_tokens = 0;
  bool wants_logits = false;  // the chunk ends the sequence's pending tokens
};

class Scheduler {
 public:
  Scheduler(Backend* backend, const SchedulerOptions& options);

  void Add(std::unique_ptr<Sequence> seq);
  // The live logical/retained ratio of running sequences (>= 1), for
  // projecting a new prompt's footprint. Set by the engine after each step.
  void set_live_compression(double ratio) { live_ratio_ = ratio < 1 ? 1 : ratio; }
  // Blocks a prompt of `tokens` is projected to hold once prefilled.
  int ProjectedPromptBlocks(int tokens) const;
  // The backend's window, block size and heads for the projection (its
  // live_ratio left at 1).
  const KvFootprint& footprint() const { return footprint_; }
  // Plans one step; may preempt running sequences. Empty when idle.
  std::vector<PlannedChunk> Schedule();
  // Removes a finished (or cancelled) sequence and frees its cache, unless
  // keep_cache (the engine keeps it for a session's next turn).
  std::unique_ptr<Sequence> Remove(Sequence* seq, bool keep_cache = false);

  // Called before preempting or refusing admission for lack of blocks: frees
  // one idle cached session and returns true, or returns false (none left).
  void SetReclaimer(std::function<bool()> reclaim) { reclaim_ = std::move(reclaim); }

  // Sequences that can never run: alone on an empty pool they still do not
  // fit. The engine fails them with RESOURCE_EXHAUSTED.
  std::vector<Sequence*> TakeUnschedulable();

  const std::list<std::unique_ptr<Sequence>>& running() const { return running_; }
  const std::list<std::unique_ptr<Sequence>>& waiting() const { return waiting_; }
  int num_preemptions() const { return num_preemptions_; }
  bool idle() const { return running_.empty() && waiting_.empty(); }
  // Every sequence (running and waiting), for deadline and cancel sweeps.
  std::vector<Sequence*> All();

 private:
  static bool MoreUrgent(const Sequence& a, const Sequence& b);
  void Preempt(std::list<std::unique_ptr<Sequence>>::iterator it);
  // Largest n <= want whose blocks fit in `free_blocks` (0 if none).
  int FitChunk(const Sequence& seq, int want, int free_blocks) const;

  Backend* backend_;
  SchedulerOptions options_;
  std::list<std::unique_ptr<Sequence>> running_;  // resident in the cache
  std::list<std::unique_ptr<Sequence>> waiting_;  // sorted by urgency
  std::vector<Sequence*> unschedulable_;
  int num_preemptions_ = 0;
  double live_ratio_ = 1.0;
  KvFootprint footprint_;  // the backend's window, block size and heads
  std::function<bool()> reclaim_;
};

}  // namespace dms
