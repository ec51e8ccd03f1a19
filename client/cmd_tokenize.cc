// dms tokenize: token ids of a text, or of a chat message rendered with the
// model's chat template (the server tokenizes, so ids match what it serves).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "client/client_util.h"
#include "client/commands.h"
#include "client/connection.h"

namespace dms::client {
namespace {

struct TokenizeArgs {
  ConnectionOptions connection;
  std::string text, file, system;
  bool chat = false, no_think = false, allow_special = false, split_special = false, json = false,
       show_text = false;
  double timeout_s = 30;
};

int RunTokenize(const TokenizeArgs& a) {
  if (a.text.empty() == a.file.empty()) return Fail("tokenize: give exactly one of TEXT or --file");
  if (!a.chat && (!a.system.empty() || a.no_think)) {
    return Fail("tokenize: --system and --no-think apply only with --chat");
  }
  std::string text = a.text;
  if (!a.file.empty()) {
    auto t = ReadTextFile(a.file, "--file");
    if (!t.ok()) return Fail(t.status().message());
    text = *t;
  }
  if (a.allow_special && a.split_special) {
    return Fail("tokenize: give at most one of --allow-special and --split-special");
  }
  dms::v1::TokenizeRequest request;
  // Unset: the server recognises special tokens, as it does for a Generate prompt.
  if (a.split_special) request.set_allow_special(false);
  if (a.chat) {
    dms::v1::ChatRequest* chat = request.mutable_chat();
    if (!a.system.empty()) {
      auto* m = chat->add_messages();
      m->set_role("system");
      m->set_content(a.system);
    }
    auto* m = chat->add_messages();
    m->set_role("user");
    m->set_content(text);
    chat->set_enable_thinking(!a.no_think);
  } else {
    request.set_text(text);
  }
  auto connection = Connection::Open(a.connection);
  if (!connection.ok()) return Fail(connection.status().message());
  if (Status st = (*connection)->WaitConnected(); !st.ok()) return Fail(st.message());
  grpc::ClientContext context;
  (*connection)->Prepare(&context, a.timeout_s);
  dms::v1::TokenizeResponse response;
  const grpc::Status status = (*connection)->stub()->Tokenize(&context, request, &response);
  if (!status.ok()) return Fail(FromGrpc(status, "tokenize").message());
  std::vector<int32_t> ids(response.token_ids().begin(), response.token_ids().end());
  // The server returns the rendered template of a chat; plain text is ours.
  const std::string& shown = a.chat ? response.text() : text;
  if (a.json) {
    nlohmann::json j = {{"count", ids.size()}, {"token_ids", ids}, {"text", shown}};
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  std::string line;
  for (int32_t id : ids) line += (line.empty() ? "" : " ") + std::to_string(id);
  std::printf("%s\n", line.c_str());
  if (a.show_text) std::printf("%s\n", shown.c_str());
  std::fprintf(stderr, "[%zu tokens]\n", ids.size());
  return 0;
}

}  // namespace

void RegisterTokenizeCommand(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<TokenizeArgs>();
  CLI::App* cmd = app.add_subcommand("tokenize", "Token ids of a text (or of a chat turn with --chat)");
  cmd->add_option("text,--text", a->text, "Text to tokenize");
  cmd->add_option("--file", a->file, "Read the text from a file");
  cmd->add_flag("--chat", a->chat, "Render the text as a user message with the chat template first");
  cmd->add_option("--system", a->system, "System message (with --chat)");
  cmd->add_flag("--no-think", a->no_think, "enable_thinking=false (with --chat)");
  cmd->add_flag("--allow-special", a->allow_special,
                "Recognise special tokens written in the text (the default, as generate does)");
  cmd->add_flag("--split-special", a->split_special, "Tokenize special-token text as plain text");
  cmd->add_flag("--show-text", a->show_text,
                "Also print the text (with --chat: the rendered template)");
  cmd->add_flag("--json", a->json, "Print {\"count\", \"token_ids\", \"text\"}");
  cmd->add_option("--timeout", a->timeout_s, "Deadline in seconds")->capture_default_str();
  AddConnectionFlags(cmd, &a->connection);
  cmd->callback([a, exit_code] { *exit_code = RunTokenize(*a); });
}

}  // namespace dms::client
