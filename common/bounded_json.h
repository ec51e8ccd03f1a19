// The one way to read JSON that comes from outside the process: checkpoint
// headers and files, tokenizer files, JSON lines, request bodies. Before
// anything is parsed the text must be within a size limit and a nesting
// limit, so that nlohmann's recursive operations on the tree (dump, copy,
// compare) cannot overflow the stack and a huge document cannot exhaust
// memory. The limits per document kind are listed in docs/security.md.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace dms {

struct JsonLimits {
  uint64_t max_bytes = 0;
  int max_depth = 0;  // containers inside containers: "[]" is 1, "[[1]]" is 2
};

// Real files nest at most 5 levels (Qwen3's tokenizer.json); 64 leaves room
// for any honest document and keeps recursion at a few kB of stack.
inline constexpr int kJsonMaxDepth = 64;

// config.json (a few kB) and generation_config.json.
inline constexpr JsonLimits kConfigJsonLimits{uint64_t{1} << 20, kJsonMaxDepth};
// tokenizer.json: Qwen3's is 11 MB.
inline constexpr JsonLimits kTokenizerJsonLimits{uint64_t{64} << 20, kJsonMaxDepth};
// tokenizer_config.json: Qwen3's is 10 kB (chat template and added tokens).
inline constexpr JsonLimits kTokenizerConfigJsonLimits{uint64_t{16} << 20, kJsonMaxDepth};
// A safetensors header: the reference implementation's limit (an 8B model's is ~100 kB).
inline constexpr JsonLimits kSafetensorsHeaderLimits{100'000'000, kJsonMaxDepth};
// model.safetensors.index.json: an 8B model's is ~30 kB, a 235B MoE's ~3 MB.
inline constexpr JsonLimits kShardIndexJsonLimits{uint64_t{16} << 20, kJsonMaxDepth};
// One line of a JSON-lines input (dms-engine tokenize / chat-template, dms bench datasets).
inline constexpr JsonLimits kJsonLineLimits{uint64_t{16} << 20, kJsonMaxDepth};

// Deepest nesting of arrays and objects in `text`, counting brackets outside
// strings up to the first NUL outside a string (where nlohmann's parser ends
// the input); for text the parser accepts this is the tree's depth ("1" ->
// 0). Stops scanning once past `stop_above` and returns stop_above + 1.
int JsonNestingDepth(std::string_view text, int stop_above);

// OK, or one line:
//   "<source>: <what> is larger than N bytes"
//   "<source>: <what> is nested deeper than N levels"
Status CheckJsonLimits(std::string_view text, const JsonLimits& limits, std::string_view source,
                       std::string_view what);

// CheckJsonLimits, then a parse; a syntax error is
//   "<source>: <what> is not valid JSON (syntax error at byte N)".
StatusOr<nlohmann::json> ParseBoundedJson(std::string_view text, const JsonLimits& limits,
                                          std::string_view source, std::string_view what);

}  // namespace dms
