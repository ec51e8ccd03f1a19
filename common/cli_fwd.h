// Forward declarations of the CLI11 types that headers name in Add*Flags /
// Register*Command signatures. CLI11 is header-only and costs ~6 s of -O3
// compile per translation unit, so headers include this and only the .cc
// files that add flags include <CLI/CLI.hpp>.
#pragma once

namespace CLI {
class App;
class Option;
}  // namespace CLI
