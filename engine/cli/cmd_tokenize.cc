// `dms-engine tokenize` and `dms-engine chat-template`: JSON lines in on
// stdin, JSON lines out on stdout, one output line per input line (blank
// lines are skipped). The first bad line stops the command with one error
// line on stderr naming the line number, and exit code 1.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/cli/commands.h"
#include "engine/tokenizer/chat_request.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "common/bounded_json.h"

namespace dms::cli {
namespace {

using nlohmann::json;
using nlohmann::ordered_json;

// Runs `handle` on each non-blank stdin line; returns the exit code.
template <typename Handler>
int ForEachLine(Handler handle) {
  std::string line;
  for (size_t number = 1; std::getline(std::cin, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = "line " + std::to_string(number);
    if (Status st = CheckJsonLimits(line, kJsonLineLimits, where, "JSON"); !st.ok()) {
      return Fail(st.message());
    }
    json request;
    try {
      request = json::parse(line);
    } catch (const json::exception& e) {
      return Fail(where + ": invalid JSON: " + e.what());
    }
    StatusOr<ordered_json> result = handle(request);
    if (!result.ok()) return Fail(where + ": " + result.status().message());
    std::string out = result->dump(-1, ' ', false, json::error_handler_t::replace);
    out.push_back('\n');
    std::fwrite(out.data(), 1, out.size(), stdout);
  }
  return 0;
}

StatusOr<ordered_json> TokenizeLine(const Tokenizer& tok, const json& request) {
  if (!request.is_object() || !request.contains("text") || !request["text"].is_string()) {
    return InvalidArgumentError("\"text\": expected a string");
  }
  std::vector<int32_t> ids = tok.Encode(request["text"].get_ref<const std::string&>());
  ordered_json out;
  out["ids"] = ids;
  out["decoded"] = tok.Decode(ids, /*skip_special=*/false);
  return out;
}

StatusOr<ordered_json> ChatTemplateLine(const Tokenizer& tok, const json& request) {
  DMS_ASSIGN_OR_RETURN(ChatRequest chat, ParseChatRequest(request));
  DMS_ASSIGN_OR_RETURN(std::string text, RenderChatTemplate(chat.messages, chat.options));
  std::vector<int32_t> ids = tok.Encode(text);
  ordered_json out;
  out["text"] = std::move(text);
  out["ids"] = std::move(ids);
  return out;
}

StatusOr<std::unique_ptr<Tokenizer>> LoadForCli(const std::string& path) {
  std::ios::sync_with_stdio(false);
  return Tokenizer::Load(path);
}

}  // namespace

void RegisterTokenizeCommands(CLI::App& app, int* exit_code) {
  auto tokenizer_path = std::make_shared<std::string>();

  CLI::App* tokenize = app.add_subcommand(
      "tokenize", "Encode {\"text\"} JSON lines from stdin; print {\"ids\", \"decoded\"} lines");
  tokenize->add_option("--tokenizer", *tokenizer_path, "tokenizer.json, or a directory holding it")
      ->required();
  tokenize->callback([tokenizer_path, exit_code] {
    auto tok = LoadForCli(*tokenizer_path);
    if (!tok.ok()) {
      *exit_code = Fail(tok.status().message());
      return;
    }
    const Tokenizer& t = **tok;
    *exit_code = ForEachLine([&t](const json& r) { return TokenizeLine(t, r); });
  });

  CLI::App* chat = app.add_subcommand(
      "chat-template",
      "Render {\"messages\", \"enable_thinking\", \"add_generation_prompt\"} JSON lines with "
      "Qwen3's chat template; print {\"text\", \"ids\"} lines");
  chat->add_option("--tokenizer", *tokenizer_path, "tokenizer.json, or a directory holding it")
      ->required();
  chat->callback([tokenizer_path, exit_code] {
    auto tok = LoadForCli(*tokenizer_path);
    if (!tok.ok()) {
      *exit_code = Fail(tok.status().message());
      return;
    }
    Status supported = CheckChatTemplateSupported((*tok)->chat_template());
    if (!supported.ok()) {
      *exit_code = Fail(supported.message());
      return;
    }
    const Tokenizer& t = **tok;
    *exit_code = ForEachLine([&t](const json& r) { return ChatTemplateLine(t, r); });
  });
}

}  // namespace dms::cli
