// dms-engine: offline tool over the engine (no server): tokenizer checks,
// checkpoint inspection, demo checkpoint generation, scoring and generation.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <iostream>

#include "engine/cli/commands.h"

namespace dms::cli {
int Fail(const std::string& message) {
  std::fprintf(stderr, "dms-engine: %s\n", message.c_str());
  return 1;
}
}  // namespace dms::cli

int main(int argc, char** argv) {
  CLI::App app{"dms-engine: Qwen3-DMS engine tool (tokenize, info, make-model, score, generate)"};
  app.require_subcommand(1);
  int exit_code = 0;
  dms::cli::RegisterTokenizeCommands(app, &exit_code);
  dms::cli::RegisterInfoCommand(app, &exit_code);
  dms::cli::RegisterMakeModelCommand(app, &exit_code);
  dms::cli::RegisterScoreCommand(app, &exit_code);
  dms::cli::RegisterGenerateCommand(app, &exit_code);
  CLI11_PARSE(app, argc, argv);
  std::fflush(stdout);
  return exit_code;
}
