#include "client/bench_prompts.h"

#include <algorithm>
#include <random>

#include "client/haystack.h"
#include "client/server_tokenizer.h"

namespace dms::client {
namespace {

// Needle prompts cost Tokenize calls to build; a few distinct ones suffice.
constexpr int64_t kMaxNeedlePrompts = 8;

Status CheckContext(const std::vector<BenchPrompt>& prompts, const dms::v1::ModelInfo& model) {
  if (model.max_model_len() <= 0) return OkStatus();
  for (size_t i = 0; i < prompts.size(); ++i) {
    const BenchPrompt& p = prompts[i];
    if (p.input_tokens < 0) continue;
    if (p.input_tokens + p.max_tokens > model.max_model_len()) {
      return InvalidArgumentError(Format("prompt %zu: %lld input + %u output tokens exceed the model's context of %d "
                                         "(lower --input-len/--output-len)",
                                         i, static_cast<long long>(p.input_tokens), p.max_tokens,
                                         model.max_model_len()));
    }
  }
  return OkStatus();
}

}  // namespace

Status ValidateDatasetOptions(const BenchDatasetOptions& o) {
  if (o.dataset != "random" && o.dataset != "jsonl" && o.dataset != "needle") {
    return InvalidArgumentError("--dataset: expected random, jsonl or needle, found '" + o.dataset + "'");
  }
  if (o.dataset == "jsonl" && o.path.empty()) {
    return InvalidArgumentError("--dataset jsonl: give the file with --dataset-path");
  }
  if (o.dataset != "jsonl" && !o.path.empty()) return InvalidArgumentError("--dataset-path: only for --dataset jsonl");
  if (o.needle_depth > 1) return InvalidArgumentError("--needle-depth: expected a fraction in [0, 1] (or < 0: random)");
  return OkStatus();
}

StatusOr<std::vector<BenchPrompt>> BuildBenchPrompts(const BenchDatasetOptions& o, const Connection& connection,
                                                     const dms::v1::ModelInfo& model) {
  DMS_RETURN_IF_ERROR(ValidateDatasetOptions(o));
  std::vector<BenchPrompt> prompts;
  if (o.dataset == "random") {
    RandomDatasetOptions r;
    r.input_len = o.input_len;
    r.output_len = o.output_len;
    r.vocab_size = model.vocab_size();
    r.seed = o.seed;
    r.count = std::max<int64_t>(1, o.pool_size);
    DMS_ASSIGN_OR_RETURN(prompts, MakeRandomPrompts(r));
  } else if (o.dataset == "jsonl") {
    DMS_ASSIGN_OR_RETURN(prompts, LoadJsonlPrompts(o.path, o.output_len, o.seed));
    const bool needs_tokenizer = std::any_of(prompts.begin(), prompts.end(), [](const BenchPrompt& p) {
      return p.kind != BenchPrompt::Kind::kTokenIds;
    });
    if (needs_tokenizer && !model.has_tokenizer()) {
      return FailedPreconditionError(o.path + ": text prompts and chats need a model with a tokenizer; the served model has none (use prompt_token_ids)");
    }
  } else if (o.dataset == "needle") {
    if (!model.has_tokenizer()) {
      return FailedPreconditionError("--dataset needle: needs a model with a tokenizer; the served model has none");
    }
    std::mt19937_64 rng(o.seed);
    const TokenCounters counters = ServerTokenCounters(connection, /*enable_thinking=*/false);
    const int64_t n = std::clamp<int64_t>(o.pool_size, 1, kMaxNeedlePrompts);
    for (int64_t i = 0; i < n; ++i) {
      NeedleSpec spec;
      spec.target_tokens = o.input_len.lo == o.input_len.hi
                               ? o.input_len.lo
                               : std::uniform_int_distribution<int64_t>(o.input_len.lo, o.input_len.hi)(rng);
      spec.depth = o.needle_depth >= 0 ? o.needle_depth : std::uniform_real_distribution<double>(0, 1)(rng);
      spec.seed = o.seed + static_cast<uint64_t>(i);
      DMS_ASSIGN_OR_RETURN(NeedlePrompt np, BuildNeedlePrompt(spec, counters));
      BenchPrompt p;
      p.kind = BenchPrompt::Kind::kChat;
      for (const std::string& m : np.user_messages) p.chat.emplace_back("user", m);
      p.enable_thinking = false;
      p.input_tokens = np.prompt_tokens;
      p.max_tokens = static_cast<uint32_t>(o.output_len.lo == o.output_len.hi
                                               ? o.output_len.lo
                                               : std::uniform_int_distribution<int64_t>(o.output_len.lo, o.output_len.hi)(rng));
      prompts.push_back(std::move(p));
    }
  }
  DMS_RETURN_IF_ERROR(CheckContext(prompts, model));
  return prompts;
}

}  // namespace dms::client
