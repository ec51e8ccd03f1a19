// Builds the prompt pool of a benchmark from --dataset and its options,
// checked against the served model (vocabulary, context, tokenizer).
#pragma once

#include <string>
#include <vector>

#include "client/connection.h"
#include "client/dataset.h"

namespace dms::client {

struct BenchDatasetOptions {
  std::string dataset = "random";  // random | jsonl | needle
  std::string path;                // jsonl
  IntRange input_len{128, 128};    // random, needle (prompt tokens)
  IntRange output_len{64, 64};     // max_tokens per request
  double needle_depth = -1;        // needle: fixed depth in [0, 1]; < 0 = random per prompt
  int64_t pool_size = 100;         // prompts to make (random); they are reused cyclically
  uint64_t seed = 0;
};

// Checks what can be checked before connecting (dataset name, path, depth).
Status ValidateDatasetOptions(const BenchDatasetOptions& options);

StatusOr<std::vector<BenchPrompt>> BuildBenchPrompts(const BenchDatasetOptions& options,
                                                     const Connection& connection,
                                                     const dms::v1::ModelInfo& model);

}  // namespace dms::client
