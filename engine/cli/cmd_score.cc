// dms-engine score: teacher-forced logits for every position of a token list,
// fed to the backend in the given chunk sizes (the chunking-invariance check).
#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include "engine/backends/backend_factory.h"
#include "engine/cli/cli_util.h"
#include "engine/cli/commands.h"
#include "engine/model/checkpoint.h"

namespace dms::cli {
namespace {

struct ScoreOptions {
  std::string model, tokens, chunks, backend = "cpu", out, stats;
  int threads = 0;
  bool dense = false;
  std::string precision = "bf16";
};

Status RunScore(const ScoreOptions& o) {
  DMS_ASSIGN_OR_RETURN(std::vector<int32_t> tokens, ParseIntList(o.tokens, "--tokens"));
  if (tokens.empty()) return InvalidArgumentError("--tokens: no tokens given");
  std::vector<int32_t> chunks = {static_cast<int32_t>(tokens.size())};
  if (!o.chunks.empty()) {
    DMS_ASSIGN_OR_RETURN(chunks, ParseIntList(o.chunks, "--chunks"));
    int64_t sum = 0;
    for (int32_t c : chunks) {
      if (c <= 0) return InvalidArgumentError("--chunks: sizes must be positive, got " + std::to_string(c));
      sum += c;
    }
    if (sum != static_cast<int64_t>(tokens.size())) {
      return InvalidArgumentError("--chunks sums to " + std::to_string(sum) + " but --tokens has " +
                                  std::to_string(tokens.size()) + " tokens");
    }
  }
  DMS_ASSIGN_OR_RETURN(std::unique_ptr<Checkpoint> ckpt, Checkpoint::Load(o.model));
  BackendOptions bo;
  bo.kind = o.backend;
  bo.num_threads = o.threads;
  bo.force_dense = o.dense;
  bo.precision = o.precision;
  DMS_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend,
                       CreateBackend(std::shared_ptr<const Checkpoint>(std::move(ckpt)), bo));
  const int vocab = backend->config().vocab_size;
  DMS_ASSIGN_OR_RETURN(SeqId seq, backend->CreateSequence());
  std::vector<float> all, step;
  all.reserve(tokens.size() * static_cast<size_t>(vocab));
  size_t pos = 0;
  for (int32_t n : chunks) {
    ForwardChunk chunk;
    chunk.seq = seq;
    chunk.tokens = std::span<const int32_t>(tokens.data() + pos, n);
    chunk.num_logits = n;
    DMS_RETURN_IF_ERROR(backend->Forward(std::span<const ForwardChunk>(&chunk, 1), &step));
    all.insert(all.end(), step.begin(), step.end());
    pos += n;
  }
  DMS_RETURN_IF_ERROR(WriteBinaryFile(o.out, all.data(), all.size() * sizeof(float)));
  if (!o.stats.empty()) {
    SequenceKvStats st = backend->SequenceStats(seq);
    nlohmann::json j;
    j["retained"] = st.retained;
    j["logical_tokens"] = st.logical_tokens;
    j["compression_ratio"] = st.compression_ratio;
    j["kv_blocks"] = st.blocks;
    j["chunks"] = chunks;
    j["backend"] = backend->info().name;
    DMS_RETURN_IF_ERROR(WriteTextFile(o.stats, j.dump(2) + "\n"));
  }
  backend->ReleaseSequence(seq);
  return OkStatus();
}

}  // namespace

void RegisterScoreCommand(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<ScoreOptions>();
  CLI::App* cmd = app.add_subcommand(
      "score", "Write float32 logits [T, vocab] for every position of --tokens, fed in --chunks");
  cmd->add_option("--model", o->model, "Checkpoint directory")->required();
  cmd->add_option("--tokens", o->tokens, "Comma-separated token ids")->required();
  cmd->add_option("--chunks", o->chunks, "Comma-separated chunk sizes (default: one chunk)");
  cmd->add_option("--backend", o->backend, "cpu | cuda | auto")->capture_default_str();
  cmd->add_option("--out", o->out, "Output file: float32 little-endian [T, vocab]")->required();
  cmd->add_option("--stats", o->stats, "Write KV statistics JSON (retained [layers][kv_heads], ...)");
  cmd->add_option("--threads", o->threads, "CPU threads (0: all)");
  cmd->add_flag("--dense", o->dense, "Ignore DMS decisions (dense cache)");
  cmd->add_option("--precision", o->precision, "CUDA numerics: bf16 | f32")->capture_default_str();
  cmd->callback([o, exit_code] {
    Status st = RunScore(*o);
    *exit_code = st.ok() ? 0 : Fail(st.message());
  });
}

}  // namespace dms::cli
