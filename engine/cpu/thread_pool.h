// ThreadPool: a fixed set of worker threads for data-parallel loops.
//
// ParallelFor(n, fn) splits [0, n) into contiguous ranges, runs fn(begin, end)
// on the workers and the calling thread, and returns when all are done.
// Threading: ParallelFor must be called from one thread at a time (the engine
// thread); fn must not call ParallelFor.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace dms {

class ThreadPool {
 public:
  // num_threads <= 0: std::thread::hardware_concurrency().
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn over [0, n) in chunks of at least `grain` items.
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn, int64_t grain = 1);

 private:
  void WorkerLoop(int index);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  const std::function<void(int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int64_t chunk_ = 0;
  int64_t num_chunks_ = 0;
  int64_t next_chunk_ = 0;   // guarded by mu_
  int pending_ = 0;          // workers still busy with this job
  uint64_t generation_ = 0;  // bumps per job so workers see new work
  bool stop_ = false;
};

}  // namespace dms
