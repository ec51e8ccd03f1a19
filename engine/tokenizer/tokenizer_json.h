// ReadTokenizerJson: tokenizer.json in one streaming (SAX) pass. The model's
// vocab and merges (151K entries each in Qwen3's 11 MB file) go straight into
// vectors; the rest of the file becomes a small nlohmann::json tree for the
// loader's checks (tokenizer_loader.cc). A whole-file DOM parse was 0.58 s
// of a 0.70 s load in a release build and 5.3 s under ThreadSanitizer, paid
// by every process that loads the tokenizer (server start, dms-engine).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace dms {

struct TokenizerJson {
  // The file without root.model.vocab when vocab_streamed and without
  // root.model.merges when merges_streamed.
  nlohmann::json root;

  // root.model.vocab was an object: its entries in file order, the id -1
  // where the value is not an integer in [0, INT32_MAX] (the loader names
  // such an entry; a later duplicate key overrides an earlier one, as in a
  // DOM parse).
  bool vocab_streamed = false;
  std::vector<std::pair<std::string, int64_t>> vocab;

  // root.model.merges was an array: its ["left", "right"] or "left right"
  // entries in file order, and the index of the first entry of neither form
  // (-1: none).
  bool merges_streamed = false;
  std::vector<std::pair<std::string, std::string>> merges;
  int64_t bad_merge_index = -1;
};

// `text` is the file's contents; `path` names it in errors ("<path>: invalid
// JSON: ..."). INVALID_ARGUMENT for malformed JSON, and for text beyond
// kTokenizerJsonLimits ("<path>: JSON is larger than N bytes", "<path>: JSON
// is nested deeper than 64 levels").
StatusOr<TokenizerJson> ReadTokenizerJson(const std::string& path, std::string_view text);

}  // namespace dms
