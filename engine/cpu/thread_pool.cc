#include "engine/cpu/thread_pool.h"

#include <algorithm>

namespace dms {

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::thread::hardware_concurrency());
  if (num_threads <= 0) num_threads = 1;
  for (int i = 0; i + 1 < num_threads; ++i) {
    workers_.emplace_back([this, i] { WorkerLoop(i); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                             int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int64_t max_chunks = std::max<int64_t>(1, n / grain);
  // A few chunks per thread balances uneven work without much overhead.
  const int64_t num_chunks = std::min<int64_t>(max_chunks, 4 * num_threads());
  if (workers_.empty() || num_chunks == 1) {
    fn(0, n);
    return;
  }
  std::unique_lock<std::mutex> lock(mu_);
  fn_ = &fn;
  n_ = n;
  num_chunks_ = num_chunks;
  chunk_ = (n + num_chunks - 1) / num_chunks;
  next_chunk_ = 0;
  pending_ = static_cast<int>(workers_.size());
  ++generation_;
  lock.unlock();
  work_cv_.notify_all();
  // The calling thread works too.
  for (;;) {
    lock.lock();
    int64_t c = next_chunk_ < num_chunks_ ? next_chunk_++ : -1;
    lock.unlock();
    if (c < 0) break;
    fn(c * chunk_, std::min(n, (c + 1) * chunk_));
  }
  lock.lock();
  done_cv_.wait(lock, [this] { return pending_ == 0; });
  fn_ = nullptr;
}

void ThreadPool::WorkerLoop(int index) {
  uint64_t seen = 0;
  for (;;) {
    std::unique_lock<std::mutex> lock(mu_);
    work_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
    if (stop_) return;
    seen = generation_;
    for (;;) {
      int64_t c = next_chunk_ < num_chunks_ ? next_chunk_++ : -1;
      if (c < 0) break;
      const auto* fn = fn_;
      const int64_t begin = c * chunk_, end = std::min(n_, (c + 1) * chunk_);
      lock.unlock();
      (*fn)(begin, end);
      lock.lock();
    }
    if (--pending_ == 0) done_cv_.notify_one();
  }
}

}  // namespace dms
