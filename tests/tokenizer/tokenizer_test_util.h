// Helpers of the tokenizer tests: the real Qwen3 tokenizer (loaded once per
// test binary) and JSON-lines fixture reading.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"
#include "tests/test_util.h"

namespace dms::testing {

// The real Qwen3 tokenizer; throws (failing the test with a clear message)
// when it is not installed.
inline const Tokenizer& RealTokenizer() {
  static std::unique_ptr<Tokenizer> tok = [] {
    auto loaded = Tokenizer::Load(TokenizerDir());
    if (!loaded.ok()) throw std::runtime_error("cannot load tokenizer: " + loaded.status().ToString());
    return std::move(loaded).value();
  }();
  return *tok;
}

// One JSON value per non-empty line. Fails the calling test (and returns
// nothing) when the file is missing or a line is not JSON.
inline std::vector<nlohmann::json> ReadJsonLines(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::ifstream f(path);
  if (!f) {
    ADD_FAILURE() << "missing fixture file " << path;
    return rows;
  }
  std::string line;
  for (int n = 1; std::getline(f, line); ++n) {
    if (line.empty()) continue;
    try {
      rows.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception& e) {
      ADD_FAILURE() << path << ":" << n << ": " << e.what();
    }
  }
  return rows;
}

// Printable form of a string for failure messages (JSON-escaped).
inline std::string Quote(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace dms::testing
