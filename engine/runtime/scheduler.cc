#include "engine/runtime/scheduler.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <unordered_set>

namespace dms {
namespace {

using SeqList = std::list<std::unique_ptr<Sequence>>;

void InsertSorted(SeqList& list, std::unique_ptr<Sequence> seq,
                  bool (*more_urgent)(const Sequence&, const Sequence&)) {
  auto it = list.begin();
  while (it != list.end() && !more_urgent(*seq, **it)) ++it;
  list.insert(it, std::move(seq));
}

}  // namespace

Scheduler::Scheduler(Backend* backend, const SchedulerOptions& options)
    : backend_(backend), options_(options) {
  const ModelConfig& c = backend_->config();
  const BackendInfo info = backend_->info();
  const bool evicts = info.dms_eviction && !c.dms.disable_eviction;
  footprint_.window = evicts ? c.dms.window_size : kDenseWindow;
  footprint_.block_size = info.kv_block_size;
  footprint_.heads = c.num_layers * c.num_kv_heads;
}

bool Scheduler::MoreUrgent(const Sequence& a, const Sequence& b) {
  if (a.request.priority != b.request.priority) return a.request.priority < b.request.priority;
  return a.arrival < b.arrival;
}

void Scheduler::Add(std::unique_ptr<Sequence> seq) {
  seq->state = SequenceState::kWaiting;
  InsertSorted(waiting_, std::move(seq), &MoreUrgent);
}

std::vector<Sequence*> Scheduler::All() {
  std::vector<Sequence*> all;
  for (auto& s : running_) all.push_back(s.get());
  for (auto& s : waiting_) all.push_back(s.get());
  return all;
}

std::unique_ptr<Sequence> Scheduler::Remove(Sequence* seq, bool keep_cache) {
  for (SeqList* list : {&running_, &waiting_}) {
    for (auto it = list->begin(); it != list->end(); ++it) {
      if (it->get() != seq) continue;
      std::unique_ptr<Sequence> out = std::move(*it);
      list->erase(it);
      if (out->kv >= 0 && !keep_cache) {
        backend_->ReleaseSequence(out->kv);
        out->kv = -1;
      }
      out->state = SequenceState::kFinished;
      return out;
    }
  }
  return nullptr;
}

void Scheduler::Preempt(SeqList::iterator it) {
  std::unique_ptr<Sequence> seq = std::move(*it);
  running_.erase(it);
  backend_->ReleaseSequence(seq->kv);
  seq->kv = -1;
  seq->token_history_set = false;
  seq->num_cached = 0;  // recomputed from its tokens (prompt + generated so far)
  seq->kv_policy_pending = IsTrainingFree(seq->request.kv_policy);  // and pruned again
  ++seq->preemptions;
  ++num_preemptions_;
  Add(std::move(seq));
}

int Scheduler::FitChunk(const Sequence& seq, int want, int free_blocks) const {
  if (want <= 0 || free_blocks < 0) return 0;
  if (backend_->KvBlocksNeeded(seq.kv, want) <= free_blocks) return want;
  int lo = 0, hi = want;  // lo fits, hi does not
  while (hi - lo > 1) {
    const int mid = lo + (hi - lo) / 2;
    if (backend_->KvBlocksNeeded(seq.kv, mid) <= free_blocks) lo = mid; else hi = mid;
  }
  return lo;
}

int Scheduler::ProjectedPromptBlocks(int tokens) const {
  KvFootprint f = footprint_;
  f.live_ratio = live_ratio_;
  return static_cast<int>(std::min<int64_t>(ProjectedBlocks(tokens, f), INT32_MAX));
}

std::vector<PlannedChunk> Scheduler::Schedule() {
  std::vector<PlannedChunk> plan;
  std::unordered_set<const Sequence*> planned;
  int budget = options_.max_batch_tokens;
  int free_blocks = backend_->PoolStats().blocks_free;

  // 1-2. Running sequences, most urgent first: decodes and prefill chunks.
  // Two passes so decodes are never starved by a long prefill.
  for (int pass = 0; pass < 2 && budget > 0; ++pass) {
    for (auto it = running_.begin(); it != running_.end() && budget > 0;) {
      Sequence& s = **it;
      if (planned.count(&s) || s.pending() <= 0 || s.decoding() != (pass == 0)) {
        ++it;
        continue;
      }
      int n = FitChunk(s, std::min(s.chunk_limit(), budget), free_blocks);
      // Make room by preempting the least urgent unplanned running sequences.
      while (n == 0) {
        // Idle session caches go before running work does.
        if (reclaim_ && reclaim_()) {
          free_blocks = backend_->PoolStats().blocks_free;
          n = FitChunk(s, std::min(s.chunk_limit(), budget), free_blocks);
          continue;
        }
        auto victim = std::prev(running_.end());
        while (victim != it && planned.count(victim->get())) --victim;
        if (victim == it) break;
        Preempt(victim);
        free_blocks = backend_->PoolStats().blocks_free;
        n = FitChunk(s, std::min(s.chunk_limit(), budget), free_blocks);
      }
      if (n == 0) {
        // Not even one token fits with everyone else gone: give up the slot.
        auto self = it++;
        if (plan.empty() && running_.size() == 1) {
          unschedulable_.push_back(self->get());
        } else {
          Preempt(self);
        }
        continue;
      }
      free_blocks -= backend_->KvBlocksNeeded(s.kv, n);
      plan.push_back({&s, n, n == s.pending()});
      planned.insert(&s);
      budget -= n;
      ++it;
    }
  }

  // 3. Admit waiting requests in (priority, arrival) order.
  const int watermark = static_cast<int>(
      std::ceil(backend_->PoolStats().num_blocks * options_.admit_watermark));
  while (budget > 0 && !waiting_.empty() &&
         static_cast<int>(running_.size()) < options_.max_running) {
    Sequence& s = *waiting_.front();
    const bool alone = running_.empty() && plan.empty();
    const int keep_free = alone ? 0 : watermark;
    // Not alone: admit only if the whole prompt's projected footprint fits.
    // Idle session caches are reclaimed first.
    auto projected_fits = [&] {
      return alone || ProjectedPromptBlocks(s.pending()) <= free_blocks - watermark;
    };
    while (!projected_fits() && reclaim_ && reclaim_()) free_blocks = backend_->PoolStats().blocks_free;
    if (!projected_fits()) break;  // wait for blocks; a session cache it holds stays with it
    if (s.kv < 0) {
      StatusOr<SeqId> kv = backend_->CreateSequence();
      if (!kv.ok()) break;
      s.kv = *kv;
    }
    auto chunk_fits = [&] {
      return FitChunk(s, std::min(s.chunk_limit(), budget), free_blocks - keep_free) > 0;
    };
    while (!chunk_fits() && reclaim_ && reclaim_()) free_blocks = backend_->PoolStats().blocks_free;
    const int n = FitChunk(s, std::min(s.chunk_limit(), budget), free_blocks - keep_free);
    if (n == 0) {
      backend_->ReleaseSequence(s.kv);
      s.kv = -1;
      s.token_history_set = false;
      s.num_cached = 0;  // a continued session starts over
      if (alone) {
        unschedulable_.push_back(&s);
        // Move it aside so later requests are not blocked behind it.
        running_.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
        continue;
      }
      break;  // wait for blocks to free up; keep the order
    }
    std::unique_ptr<Sequence> seq = std::move(waiting_.front());
    waiting_.pop_front();
    seq->state = SequenceState::kRunning;
    free_blocks -= backend_->KvBlocksNeeded(seq->kv, n);
    plan.push_back({seq.get(), n, n == seq->pending()});
    planned.insert(seq.get());
    budget -= n;
    InsertSorted(running_, std::move(seq), &MoreUrgent);
  }
  return plan;
}

std::vector<Sequence*> Scheduler::TakeUnschedulable() {
  std::vector<Sequence*> out;
  out.swap(unschedulable_);
  return out;
}

}  // namespace dms
