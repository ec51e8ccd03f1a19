// dms chat: an interactive conversation through the model's chat template.
// Lines starting with '/' are commands (/think, /reset, /system, /history,
// /exit); everything else is a user turn. Replies stream with a live tokens/s
// status; Ctrl-C cancels the reply in progress, not the program.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <cstdio>
#include <iostream>
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

struct ChatArgs {
  ConnectionOptions connection;
  GenerationFlags generation;
  std::string system;
  std::vector<std::string> messages;  // one-shot: send these user turns and exit
  bool no_think = false, json = false, quiet = false;
};

struct Conversation {
  std::string system;
  bool think = true;
  std::vector<dms::v1::ChatMessage> turns;  // user and assistant, in order
};

void PrintHelp() {
  std::printf(
      "commands: /think [on|off] (toggle thinking), /reset (forget the conversation),\n"
      "          /system TEXT (set the system message), /history, /exit (or Ctrl-D)\n"
      "Ctrl-C cancels a reply in progress.\n");
}

// Handles a '/' command; returns false to leave the chat.
bool HandleCommand(const std::string& line, Conversation* c) {
  const size_t space = line.find(' ');
  const std::string cmd = line.substr(0, space);
  const std::string arg = space == std::string::npos ? "" : line.substr(space + 1);
  if (cmd == "/exit" || cmd == "/quit") return false;
  if (cmd == "/think") {
    if (arg == "on") {
      c->think = true;
    } else if (arg == "off") {
      c->think = false;
    } else if (arg.empty()) {
      c->think = !c->think;
    } else {
      std::fprintf(stderr, "/think: expected on, off or nothing (toggle), found '%s'\n", arg.c_str());
      return true;
    }
    std::printf("[thinking %s]\n", c->think ? "on" : "off");
  } else if (cmd == "/reset") {
    c->turns.clear();
    std::printf("[conversation cleared]\n");
  } else if (cmd == "/system") {
    c->system = arg;
    std::printf("[system message %s]\n", arg.empty() ? "removed" : "set");
  } else if (cmd == "/history") {
    if (!c->system.empty()) std::printf("system: %s\n", c->system.c_str());
    for (const auto& m : c->turns) std::printf("%s: %s\n", m.role().c_str(), m.content().c_str());
  } else if (cmd == "/help") {
    PrintHelp();
  } else {
    std::fprintf(stderr, "unknown command '%s' (try /help)\n", cmd.c_str());
  }
  std::fflush(stdout);
  return true;
}

// Sends the conversation plus `user_text`; on success both turns join the
// history. Returns 0, kInterruptedExitCode (Ctrl-C) or 1 (error, printed).
int Turn(const ChatArgs& a, const Connection& connection, Conversation* c, const std::string& user_text) {
  dms::v1::ChatRequest request;
  if (!c->system.empty()) {
    auto* m = request.add_messages();
    m->set_role("system");
    m->set_content(c->system);
  }
  for (const auto& t : c->turns) *request.add_messages() = t;
  auto* user = request.add_messages();
  user->set_role("user");
  user->set_content(user_text);
  request.set_enable_thinking(c->think);
  if (Status st = FillChatRequest(a.generation, &request); !st.ok()) return Fail(st.message());

  StreamPrinter printer(!a.json && StreamPrinter::TerminalAttached());
  MessageCallback on_message;
  if (!a.json) on_message = [&printer](const auto& m, const auto& r) { printer.OnMessage(m, r); };
  StreamOutcome out = RunChatStream(connection, request, a.generation.timeout_s, on_message);
  if (!a.json) printer.Finish();
  if (out.interrupted) {
    std::fprintf(stderr, "[cancelled after %lld tokens; the turn is not kept]\n",
                 static_cast<long long>(out.record.output_tokens));
    return kInterruptedExitCode;
  }
  if (!out.record.ok) return Fail("chat: " + out.record.error);
  if (a.json) {
    std::printf("%s\n", OutcomeJson(out).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else if (!a.quiet) {
    std::fprintf(stderr, "%s\n", SummaryLine(out).c_str());
  }
  std::fflush(stdout);
  c->turns.push_back(*user);
  // The template itself splits "<think>...</think>" out of past replies.
  dms::v1::ChatMessage reply;
  reply.set_role("assistant");
  reply.set_content(out.record.text);
  c->turns.push_back(reply);
  return 0;
}

int RunChat(const ChatArgs& a) {
  auto connection = Connection::Open(a.connection);
  if (!connection.ok()) return Fail(connection.status().message());
  if (Status st = (*connection)->WaitConnected(); !st.ok()) return Fail(st.message());
  Conversation c;
  c.system = a.system;
  c.think = !a.no_think;
  if (!a.messages.empty()) {  // one-shot: every message must succeed
    for (const std::string& m : a.messages) {
      if (const int rc = Turn(a, **connection, &c, m); rc != 0) return rc;
    }
    return 0;
  }
  const bool tty = ::isatty(STDIN_FILENO);
  if (tty) {
    std::printf("Chatting with %s (thinking %s). /help for commands, Ctrl-D to leave.\n",
                a.connection.target.c_str(), c.think ? "on" : "off");
  }
  int last_rc = 0;
  std::string line;
  while (true) {
    if (tty) {
      std::printf("> ");
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    if (line.empty()) continue;
    if (line[0] == '/') {
      if (!HandleCommand(line, &c)) break;
      continue;
    }
    last_rc = Turn(a, **connection, &c, line);
    // Without a terminal (a script), an error ends the session with its code.
    if (!tty && last_rc == 1) return 1;
  }
  if (tty) std::printf("\n");
  return last_rc == 1 ? 1 : 0;
}

}  // namespace

void RegisterChatCommand(CLI::App& app, int* exit_code) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* cmd = app.add_subcommand("chat", "Interactive chat through the model's chat template");
  cmd->add_option("--system", a->system, "System message");
  cmd->add_flag("--no-think", a->no_think, "Start with thinking off (toggle with /think)");
  cmd->add_option("-m,--message", a->messages, "Send this user message and exit (repeatable: one conversation)");
  cmd->add_flag("--json", a->json, "Print each reply as one JSON object instead of streaming it");
  cmd->add_flag("-q,--quiet", a->quiet, "No summary line after each reply");
  AddGenerationFlags(cmd, &a->generation);
  AddConnectionFlags(cmd, &a->connection);
  cmd->callback([a, exit_code] { *exit_code = RunChat(*a); });
}

}  // namespace dms::client
