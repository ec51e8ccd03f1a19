// Drives load against the server: closed loop (a fixed number of requests in
// flight) or open loop (Poisson/gamma arrivals at a rate), each request a
// gRPC callback stream timed on the client's clock.
#pragma once

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "client/connection.h"
#include "client/dataset.h"
#include "client/kv_policy_flags.h"
#include "client/request_record.h"

namespace dms::client {

struct LoadSpec {
  enum class Mode { kConcurrency, kRate };
  Mode mode = Mode::kConcurrency;
  int concurrency = 1;         // kConcurrency: requests kept in flight
  double rate = INFINITY;      // kRate: requests/s (inf: all at once)
  double burstiness = 1;       // kRate: gamma shape (1 = Poisson)
  int max_concurrency = 0;     // kRate: cap on requests in flight (0 = none)
  int64_t num_requests = 0;    // stop launching after this many (0 = no limit)
  double duration_s = 0;       // stop launching after this long (0 = no limit)
  uint64_t seed = 0;           // arrival times

  // "concurrency=4", "rate=2.5/s", "rate=inf".
  std::string Label() const;
  // The swept value: concurrency or rate.
  double Value() const { return mode == Mode::kConcurrency ? concurrency : rate; }
};

// Applied to every request of a run.
struct RequestTemplate {
  dms::v1::SamplingParams sampling;
  bool ignore_eos = false;
  double timeout_s = 0;        // per-request deadline (0 = none)
  std::string id_prefix = "bench";
  KvPolicyFlags kv;            // --kv-policy, --compression-ratio, --protect-tokens
};

struct RunProgress {
  int64_t launched = 0, completed = 0, failed = 0, in_flight = 0, output_tokens = 0;
};

struct RunResult {
  std::vector<RequestRecord> records;  // in launch order
  double duration_s = 0;               // first send to last completion
  bool interrupted = false;            // Stop() ended it early
};

class BenchStream;

class BenchRunner {
 public:
  BenchRunner(const Connection& connection, const std::vector<BenchPrompt>& prompts, RequestTemplate request);
  ~BenchRunner();

  // Runs one load to completion (every launched request finishes). Prompts
  // are used cyclically from *next_prompt, which advances. One Run at a time.
  StatusOr<RunResult> Run(const LoadSpec& spec, size_t* next_prompt);

  RunProgress progress() const;
  // Thread-safe: stops launching and cancels the requests in flight.
  void Stop();
  bool stopped() const { return stop_.load(); }

 private:
  friend class BenchStream;
  void Launch(size_t record_index, const BenchPrompt& prompt, int64_t sequence);
  void OnStreamDone(BenchStream* stream, size_t record_index, RequestRecord record);

  const Connection& connection_;
  const std::vector<BenchPrompt>& prompts_;
  RequestTemplate request_;
  std::atomic<bool> stop_{false};
  int64_t run_number_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  Clock::time_point run_start_;
  Clock::time_point last_done_;
  std::set<BenchStream*> active_;        // guarded by mu_
  std::vector<RequestRecord> records_;   // guarded by mu_
  RunProgress progress_;                 // guarded by mu_
};

}  // namespace dms::client
