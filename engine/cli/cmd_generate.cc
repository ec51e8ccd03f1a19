#include "engine/cli/commands.h"

namespace dms::cli {

// Placeholder until the command is implemented.
void RegisterGenerateCommand(CLI::App& app, int* exit_code) {}

}  // namespace dms::cli
