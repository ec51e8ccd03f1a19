// dms generate: one prompt (text or token ids) streamed to the terminal, or a
// JSON result with the client's and the server's timings.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "client/client_util.h"
#include "client/commands.h"
#include "client/connection.h"
#include "client/generation_flags.h"
#include "client/result_json.h"
#include "client/stream_printer.h"

namespace dms::client {
namespace {

struct GenerateArgs {
  ConnectionOptions connection;
  GenerationFlags generation;
  std::string prompt, prompt_file, prompt_token_ids, request_id;
  bool json = false, quiet = false;
};

int RunGenerate(const GenerateArgs& a) {
  const int sources = !a.prompt.empty() + !a.prompt_file.empty() + !a.prompt_token_ids.empty();
  if (sources != 1) {
    return Fail("generate: give exactly one of PROMPT, --prompt-file or --prompt-token-ids");
  }
  dms::v1::GenerateRequest request;
  request.set_request_id(a.request_id);
  if (!a.prompt_token_ids.empty()) {
    auto ids = ParseIntList(a.prompt_token_ids, "--prompt-token-ids");
    if (!ids.ok()) return Fail(ids.status().message());
    for (int32_t id : *ids) request.add_prompt_token_ids(id);
  } else if (!a.prompt_file.empty()) {
    auto text = ReadTextFile(a.prompt_file, "--prompt-file");
    if (!text.ok()) return Fail(text.status().message());
    request.set_prompt(*text);
  } else {
    request.set_prompt(a.prompt);
  }
  if (Status st = FillGenerateRequest(a.generation, &request); !st.ok()) return Fail(st.message());
  auto connection = Connection::Open(a.connection);
  if (!connection.ok()) return Fail(connection.status().message());
  if (Status st = (*connection)->WaitConnected(); !st.ok()) return Fail(st.message());

  StreamPrinter printer(!a.json && StreamPrinter::TerminalAttached());
  MessageCallback on_message;
  if (!a.json) on_message = [&printer](const auto& m, const auto& r) { printer.OnMessage(m, r); };
  StreamOutcome out = RunGenerateStream(**connection, request, a.generation.timeout_s, on_message);
  if (!a.json) {
    if (out.record.text.empty() && !out.token_ids.empty()) {
      // A checkpoint without a tokenizer streams ids only.
      std::string ids;
      for (int32_t id : out.token_ids) ids += (ids.empty() ? "" : " ") + std::to_string(id);
      printer.Print(ids);
    }
    printer.Finish();
  }
  if (out.interrupted) {
    std::fprintf(stderr, "[cancelled by Ctrl-C after %lld tokens]\n",
                 static_cast<long long>(out.record.output_tokens));
    return kInterruptedExitCode;
  }
  if (!out.record.ok) return Fail("generate: " + out.record.error);
  if (a.json) {
    std::printf("%s\n", OutcomeJson(out).dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else if (!a.quiet) {
    std::fprintf(stderr, "%s\n", SummaryLine(out).c_str());
  }
  return 0;
}

}  // namespace

void RegisterGenerateCommand(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<GenerateArgs>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate from a raw prompt (no chat template), streamed");
  cmd->add_option("prompt,--prompt", a->prompt, "Prompt text (needs a model with a tokenizer)");
  cmd->add_option("--prompt-file", a->prompt_file, "Read the prompt text from a file");
  cmd->add_option("--prompt-token-ids", a->prompt_token_ids, "Prompt as comma-separated token ids");
  cmd->add_option("--request-id", a->request_id, "Request id (default: the server makes one)");
  cmd->add_flag("--json", a->json, "Print one JSON object: text, ids, finish, usage, kv, server and client timings");
  cmd->add_flag("-q,--quiet", a->quiet, "No summary line on stderr");
  AddGenerationFlags(cmd, &a->generation);
  AddConnectionFlags(cmd, &a->connection);
  cmd->callback([a, exit_code] { *exit_code = RunGenerate(*a); });
}

}  // namespace dms::client
