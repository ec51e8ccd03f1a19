// dms-engine subcommands. Each Register* adds one or more subcommands to the
// app; when a subcommand runs, its callback stores the process exit code in
// *exit_code. Errors are printed as one line on stderr ("dms-engine: ...").
#pragma once

#include <string>

#include "common/cli_fwd.h"

namespace dms::cli {

void RegisterTokenizeCommands(CLI::App& app, int* exit_code);  // tokenize, chat-template
void RegisterInfoCommand(CLI::App& app, int* exit_code);       // info
void RegisterMakeModelCommand(CLI::App& app, int* exit_code);  // make-model
void RegisterScoreCommand(CLI::App& app, int* exit_code);      // score
void RegisterGenerateCommand(CLI::App& app, int* exit_code);   // generate

// Prints "dms-engine: <message>" on stderr and returns 1.
int Fail(const std::string& message);

}  // namespace dms::cli
