// Batched decode and capacity for dms-cuda-bench (issue 7): the same
// checkpoint served with DMS eviction and with a dense cache (force_dense),
// each in its own backend sized from free device memory. One JSON object per
// line on stdout.
#pragma once

#include <string>
#include <vector>

#include "engine/core/cuda_tuning.h"

namespace dms::bench {

struct BatchDecodeArgs {
  std::string model;
  std::vector<int> streams = {1, 8, 32, 64};  // concurrent sequences decoding
  int context = 8192;                         // prompt tokens per stream
  int steps = 16;                             // timed decode steps per stream count
  int capacity_context = 32768;               // context of the capacity measurement
  double kv_fraction = 0.9;                   // of free memory after weights + workspace
  double copy_bytes_per_s = 0;                // measured ceiling, for the KV bandwidth figure
  // Which caches to run: dms, dense; dms-streamed / dense-streamed decode
  // with the streamed decode attention kernel instead of the SIMT one.
  std::vector<std::string> configs = {"dms", "dense"};
  // Sampled rows (temperature > 0): every stream samples on the backend with
  // these parameters, as a default request does; 0: greedy summaries.
  float temperature = 0, top_p = 1;
  int top_k = 0;
  bool profile = false;  // cudaProfilerStart/Stop around the timed steps (ncu --profile-from-start off)
  bool capacity = true;  // the capacity measurement after the decode
  CudaTuning tuning;     // every configuration's (a "-streamed" config sets its kernel)
};

// Returns non-zero on a setup failure (printed on stderr).
int RunBatchDecode(const BatchDecodeArgs& args);

}  // namespace dms::bench
