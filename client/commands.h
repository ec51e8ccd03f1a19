// dms subcommands. Each Register* adds a subcommand whose callback stores the
// process exit code in *exit_code; errors print one line ("dms: ...").
#pragma once

#include "common/cli_fwd.h"

namespace dms::client {

void RegisterGenerateCommand(CLI::App& app, int* exit_code);  // generate
void RegisterChatCommand(CLI::App& app, int* exit_code);      // chat
void RegisterTokenizeCommand(CLI::App& app, int* exit_code);  // tokenize
void RegisterInfoCommand(CLI::App& app, int* exit_code);      // info
void RegisterHealthCommand(CLI::App& app, int* exit_code);    // health
void RegisterBenchCommand(CLI::App& app, int* exit_code);     // bench
void RegisterEvalCommand(CLI::App& app, int* exit_code);      // eval needle

// Exit code for Ctrl-C (128 + SIGINT), as shells report it.
inline constexpr int kInterruptedExitCode = 130;

}  // namespace dms::client
