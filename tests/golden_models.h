// The golden-logit models (tests/data/models/*, and ../shared/fixtures/models
// when present): each directory's golden.json (tokens, prompt length,
// retained counts per layer and KV head) and its logits [T, vocab] from the
// independent float64 reference, plus the chunkings every backend is checked
// under. Shared by the CPU acceptance and the CUDA golden tests.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dms::testing {

struct GoldenModel {
  std::string dir, name;                   // name: the directory's last component
  std::vector<int32_t> tokens;
  int prompt_len = 0;
  std::vector<float> logits;               // [T, vocab]
  std::vector<std::vector<int>> retained;  // [layers][kv_heads]
  double rms = 0;                          // of the logits
};

GoldenModel LoadGoldenModel(const std::string& dir);

// Every model directory holding a golden.json, sorted.
std::vector<std::string> GoldenModelDirs();

// One prefill; prompt + single-token decodes; a mixed multi-turn pattern;
// random splits (seeded by T). Each as (name, chunk sizes).
std::vector<std::pair<std::string, std::vector<int>>> GoldenChunkings(const GoldenModel& g);

}  // namespace dms::testing
