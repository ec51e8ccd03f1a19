// dms: the command-line client of dms-server (generate, chat, tokenize, info,
// health), its load tester (bench) and the needle-in-a-haystack evaluation.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "client/client_util.h"
#include "client/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"dms: client, load tester and evaluator for dms-server"};
  app.require_subcommand(1);
  int exit_code = 0;
  dms::client::RegisterGenerateCommand(app, &exit_code);
  dms::client::RegisterChatCommand(app, &exit_code);
  dms::client::RegisterTokenizeCommand(app, &exit_code);
  dms::client::RegisterInfoCommand(app, &exit_code);
  dms::client::RegisterHealthCommand(app, &exit_code);
  dms::client::RegisterBenchCommand(app, &exit_code);
  dms::client::RegisterEvalCommand(app, &exit_code);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // One line instead of CLI11's two, and a usage hint.
    std::fprintf(stderr, "dms: %s (see 'dms --help')\n", dms::client::OneLine(e.what()).c_str());
    return 2;
  } catch (const std::exception& e) {
    return dms::client::Fail(std::string("unexpected error: ") + e.what());
  }
  std::fflush(stdout);
  return exit_code;
}
