// TextOutput: one request's streamed text, with stop strings.
//
// Tokens are detokenized incrementally (never half a UTF-8 character). Text
// that could still be the start of a stop string is held back, so a stop
// string is never streamed: when one completes, the text before it is
// emitted and generation ends (the stop string itself is not included, as
// in vLLM and OpenAI). Special tokens are skipped in text (vLLM's default).
//
// Not thread-safe (one per request, engine thread).
#pragma once

#include <string>
#include <vector>

#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/tokenizer.h"

namespace dms {

class TextOutput {
 public:
  TextOutput(const Tokenizer* tokenizer, std::vector<std::string> stop_strings);

  // Feeds one generated token; returns text safe to stream now. On a stop
  // string sets *stopped and *matched; the returned text ends before it.
  std::string Add(int32_t id, bool* stopped, std::string* matched);
  // At the end (length/EOS): everything held back.
  std::string Flush();

 private:
  // Length of the longest suffix of held_ that is a proper prefix of a stop string.
  size_t HeldSuffix() const;

  IncrementalDetokenizer detok_;
  std::vector<std::string> stops_;
  std::string held_;  // decoded, not yet streamed
};

}  // namespace dms
