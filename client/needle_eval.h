// dms eval needle: the needle-in-a-haystack retrieval check used in DMS
// benchmarks. A fact sits at chosen depths of filler padded to target
// lengths; the model is asked about it through the chat template with
// thinking off and on, and scored by whether its answer names "Silverton".
// By default the document and the question are two user messages, so that a
// training-free KV policy may prune the document (see NeedleLayout).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "client/connection.h"
#include "client/haystack.h"
#include "client/kv_policy_flags.h"

namespace dms::client {

struct NeedleEvalOptions {
  std::vector<int64_t> lengths{4096, 8192, 16384, 32768};  // prompt tokens
  std::vector<double> depths{0.05, 0.5, 0.95};             // fractions of the filler
  std::vector<std::string> modes{"no-think", "think"};
  double temperature = 0.1;
  uint32_t max_tokens_no_think = 128;
  uint32_t max_tokens_think = 512;
  uint64_t seed = 0;
  double timeout_s = 0;
  bool progress = true;  // one stderr line per case
  KvPolicyFlags kv;      // the KV policy each request asks for
  NeedleLayout layout = NeedleLayout::kSplit;
};

struct NeedleCase {
  int64_t length = 0;       // target prompt tokens
  double depth = 0;         // asked
  double depth_actual = 0;  // where the fact landed
  std::string mode;
  int64_t prompt_tokens = 0;
  bool ran = false;         // false: skipped or failed
  std::string skipped;      // why it did not run, if so
  std::string error;        // the request's error, if it failed
  bool correct = false;
  bool mentioned_in_reasoning = false;
  std::string answer;       // text after </think> (all text without thinking)
  int64_t output_tokens = 0;
  double ttft_s = NAN, e2e_s = NAN, tokens_per_s = NAN, decode_tokens_per_s = NAN;
  double server_decode_tokens_per_s = NAN, compression_ratio = NAN;
  std::string finish_reason;
};

struct NeedleRow {  // one (length, mode): its depths together
  int64_t length = 0;
  std::string mode;
  int cases = 0, ran = 0, correct = 0;
  double accuracy = NAN, ttft_s = NAN, tokens_per_s = NAN, decode_tokens_per_s = NAN;
  double compression_ratio = NAN, prompt_tokens = NAN;
  std::string per_depth;  // "5%:yes 50%:no 95%:yes"
};

// Checks the options (lists non-empty, depths in [0, 1], known modes).
Status ValidateNeedleOptions(const NeedleEvalOptions& options);

// Runs every case in order (length, depth, mode). Cases too long for the
// context are skipped with a note. Errors only for setup problems (no
// tokenizer, unreachable server); request failures are recorded per case.
StatusOr<std::vector<NeedleCase>> RunNeedleEval(const Connection& connection, const NeedleEvalOptions& options,
                                                bool* interrupted);

// The answer part of a reply: after the last "</think>", else all of it.
std::string AnswerPart(const std::string& text);
// Averages per (length, mode) over the cases that ran.
std::vector<NeedleRow> SummarizeNeedle(const std::vector<NeedleCase>& cases);
std::string NeedleTable(const std::vector<NeedleRow>& rows);
nlohmann::json NeedleJson(const NeedleEvalOptions& options, const std::vector<NeedleCase>& cases,
                          const std::vector<NeedleRow>& rows);

}  // namespace dms::client
