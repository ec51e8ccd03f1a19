// What CpuBackend records while a sequence with a training-free KV policy is
// prefilled (Backend::SetKvCapture): see engine/cpu/cpu_kv_policy.cc.
#pragma once

#include <cstdint>
#include <vector>

#include "engine/policies/kv_policy.h"

namespace dms {

struct CpuQueryCapture {
  KvCaptureSpec spec;
  struct Layer {
    // The last spec.last_queries queries after RoPE: position p in ring slot
    // p % last_queries.  ring: [last_queries, Hq, hd], ring_pos: [last_queries] (-1 empty)
    std::vector<float> ring;
    std::vector<int32_t> ring_pos;
    // Pre-RoPE queries of positions >= spec.stats_from, summed in double.
    int64_t count = 0;
    std::vector<double> sum;    // [Hq, hd]
    std::vector<double> outer;  // [Hq, hd, hd]
  };
  std::vector<Layer> layers;
};

}  // namespace dms
