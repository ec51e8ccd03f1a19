// dms-engine make-model --out DIR --preset tiny|small|qwen3-8b [--seed N] [--evict-rate R]:
// writes a random Qwen3-DMS checkpoint in the Hugging Face layout (see
// docs/checkpoints.md), plus the Qwen3 tokenizer files when available.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>

#include "engine/cli/commands.h"
#include "engine/model/demo_model.h"

namespace dms::cli {

namespace {

struct MakeModelArgs {
  std::string out;
  std::string variant = "neuron";
  std::string tokenizer;
  int threads = 0;
  std::string tied;  // "", "true", "false"
  DemoModelOptions options;
};

std::string DefaultTokenizerDir() {
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.cache/dms-serve/tokenizer-qwen3";
}

int RunMakeModel(MakeModelArgs& a) {
  DemoModelOptions& o = a.options;
  if (a.variant == "neuron") {
    o.variant = DemoDmsVariant::kNeuron;
  } else if (a.variant == "proj") {
    o.variant = DemoDmsVariant::kProjection;
  } else if (a.variant == "none") {
    o.variant = DemoDmsVariant::kNone;
  } else {
    return Fail("make-model: --variant must be neuron, proj or none, found '" + a.variant + "'");
  }
  if (!a.tied.empty()) {
    if (a.tied != "true" && a.tied != "false") {
      return Fail("make-model: --tied must be true or false, found '" + a.tied + "'");
    }
    o.tie_word_embeddings = a.tied == "true";
  }
  o.tokenizer_dir = a.tokenizer;
  o.threads = a.threads > 0 ? a.threads : std::max(1u, std::thread::hardware_concurrency());
  const auto start = std::chrono::steady_clock::now();
  auto report = MakeDemoModel(a.out, o);
  if (!report.ok()) return Fail(report.status().message());
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!report->tokenizer_copied) {
    std::fprintf(stderr,
                 "dms-engine: make-model: %s: wrote the checkpoint without tokenizer files\n",
                 report->tokenizer_note.c_str());
  }
  std::string files;
  for (const std::string& f : report->files) files += " " + f;
  std::printf("wrote %s: preset %s, %lld parameters, %.1f MB in%s (%.1f s, %d threads)\n",
              a.out.c_str(), o.preset.c_str(), static_cast<long long>(report->num_parameters),
              report->total_bytes / 1e6, files.c_str(), secs, o.threads);
  return 0;
}

}  // namespace

void RegisterMakeModelCommand(CLI::App& app, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "make-model",
      "Write a random Qwen3-DMS checkpoint (Hugging Face layout) for tests and benchmarks");
  auto a = std::make_shared<MakeModelArgs>();
  a->tokenizer = DefaultTokenizerDir();
  DemoModelOptions& o = a->options;
  cmd->add_option("--out", a->out, "Output directory (must not exist, or be empty)")->required();
  cmd->add_option("--preset", o.preset, "Geometry: " + DemoPresetNames())->required();
  cmd->add_option("--seed", o.seed, "Random seed (same seed, same bytes)");
  cmd->add_option("--evict-rate", o.evict_rate, "Fraction of tokens DMS evicts, in [0, 1]")
      ->default_str("0.875");
  cmd->add_option("--variant", a->variant, "DMS decisions: neuron, proj or none (plain Qwen3)")
      ->default_str("neuron");
  cmd->add_option("--tokenizer", a->tokenizer, "Directory with the Qwen3 tokenizer.json to copy")
      ->default_str(a->tokenizer);
  cmd->add_option("--threads", a->threads, "Writer threads (default: all cores)");
  cmd->add_option("--max-shard-bytes", o.max_shard_bytes,
                  "Shard size limit in bytes (default 4000000000, as Qwen3-8B)");
  // Geometry overrides (small custom models for tests).
  cmd->add_option("--layers", o.num_layers, "Override num_hidden_layers");
  cmd->add_option("--hidden", o.hidden_size, "Override hidden_size");
  cmd->add_option("--heads", o.num_q_heads, "Override num_attention_heads");
  cmd->add_option("--kv-heads", o.num_kv_heads, "Override num_key_value_heads");
  cmd->add_option("--head-dim", o.head_dim, "Override head_dim");
  cmd->add_option("--intermediate", o.intermediate_size, "Override intermediate_size");
  cmd->add_option("--vocab", o.vocab_size, "Override vocab_size");
  cmd->add_option("--window", o.window_size, "Override dms_window_size");
  cmd->add_option("--tied", a->tied, "Override tie_word_embeddings (true/false)");
  cmd->callback([a, exit_code] { *exit_code = RunMakeModel(*a); });
}

}  // namespace dms::cli
