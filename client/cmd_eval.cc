// dms eval needle: needle-in-a-haystack retrieval across lengths, depths and
// thinking modes, with TTFT, throughput and KV compression per row.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>

#include "client/client_util.h"
#include "client/commands.h"
#include "client/haystack.h"
#include "client/needle_eval.h"

namespace dms::client {
namespace {

struct EvalArgs {
  ConnectionOptions connection;
  NeedleEvalOptions options;
  std::string lengths = "4K,8K,16K,32K", depths = "5,50,95", modes = "no-think,think", layout = "split", json_path;
  bool quiet = false;
};

StatusOr<std::vector<std::string>> ParseModes(const std::string& text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    out.push_back(text.substr(pos, comma - pos));
    pos = comma + 1;
  }
  return out;
}

int RunNeedle(EvalArgs a) {
  NeedleEvalOptions& o = a.options;
  o.lengths.clear();
  size_t pos = 0;
  while (pos <= a.lengths.size()) {
    const size_t comma = std::min(a.lengths.find(',', pos), a.lengths.size());
    auto n = ParseTokenCount(a.lengths.substr(pos, comma - pos), "--lengths");
    if (!n.ok()) return Fail(n.status().message());
    o.lengths.push_back(*n);
    pos = comma + 1;
  }
  auto depths = ParseDoubleList(a.depths, "--depths", false);
  if (!depths.ok()) return Fail(depths.status().message());
  o.depths.clear();
  for (double d : *depths) o.depths.push_back(d / 100);
  o.modes = *ParseModes(a.modes);
  auto layout = ParseNeedleLayout(a.layout);
  if (!layout.ok()) return Fail(layout.status().message());
  o.layout = *layout;
  o.progress = !a.quiet;
  if (Status st = ValidateNeedleOptions(o); !st.ok()) return Fail(st.message());
  auto connection = Connection::Open(a.connection);
  if (!connection.ok()) return Fail(connection.status().message());
  if (Status st = (*connection)->WaitConnected(); !st.ok()) return Fail(st.message());
  bool interrupted = false;
  auto cases = RunNeedleEval(**connection, o, &interrupted);
  if (!cases.ok()) return Fail(cases.status().message());
  const std::vector<NeedleRow> rows = SummarizeNeedle(*cases);
  std::printf("Needle in a haystack: \"%s\" (temperature %g, %s layout)\n%s", kNeedleFact, o.temperature,
              NeedleLayoutName(o.layout), NeedleTable(rows).c_str());
  if (!a.json_path.empty()) {
    const std::string text = NeedleJson(o, *cases, rows).dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
    if (Status st = WriteTextFile(a.json_path, text + "\n"); !st.ok()) return Fail("--json: " + st.message());
    std::fprintf(stderr, "wrote %s\n", a.json_path.c_str());
  }
  if (interrupted) return kInterruptedExitCode;
  int failed = 0;
  std::string first_error;
  for (const NeedleCase& c : *cases) {
    if (c.skipped.empty() && !c.ran) {
      if (failed++ == 0) first_error = c.error;
    }
  }
  if (failed > 0) return Fail(Format("eval needle: %d case(s) failed; first: %s", failed, first_error.c_str()));
  return 0;
}

}  // namespace

void RegisterEvalCommand(CLI::App& app, int* exit_code) {
  CLI::App* eval = app.add_subcommand("eval", "Evaluations against a running server");
  eval->require_subcommand(1);
  auto a = std::make_shared<EvalArgs>();
  CLI::App* cmd = eval->add_subcommand("needle", "Needle-in-a-haystack retrieval by length, depth and thinking mode");
  cmd->add_option("--lengths", a->lengths, "Prompt lengths in tokens (K = 1024)")->capture_default_str();
  cmd->add_option("--depths", a->depths, "Depths of the fact, percent of the filler")->capture_default_str();
  cmd->add_option("--modes", a->modes, "no-think, think or both")->capture_default_str();
  cmd->add_option("--layout", a->layout,
                  "split: document and question as two user messages (the question is the protected tail, "
                  "a training-free KV policy may prune the document); single: one user message (all protected)")
      ->capture_default_str();
  cmd->add_option("--temperature", a->options.temperature, "Sampling temperature")->capture_default_str();
  cmd->add_option("--max-tokens-no-think", a->options.max_tokens_no_think, "Reply limit without thinking")
      ->capture_default_str();
  cmd->add_option("--max-tokens-think", a->options.max_tokens_think, "Reply limit with thinking")
      ->capture_default_str();
  cmd->add_option("--seed", a->options.seed, "Seed of the filler order and sampling")->capture_default_str();
  cmd->add_option("--timeout", a->options.timeout_s, "Per-request deadline in seconds (0 = none)");
  cmd->add_option("--json", a->json_path, "Write every case and the summary as JSON");
  cmd->add_flag("-q,--quiet", a->quiet, "No per-case progress lines");
  AddKvPolicyFlags(cmd, &a->options.kv, /*with_protect=*/false);
  AddConnectionFlags(cmd, &a->connection);
  cmd->callback([a, exit_code] { *exit_code = RunNeedle(*a); });
}

}  // namespace dms::client
