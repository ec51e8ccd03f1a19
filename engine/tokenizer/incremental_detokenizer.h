// Streaming detokenization: ids go in one at a time, text deltas come out.
//
// A token may end in the middle of a UTF-8 character (byte-level BPE splits
// rare characters across tokens), so the bytes of an incomplete character
// are held back until the next token completes it. Bytes that can no longer
// become a valid character are emitted as U+FFFD exactly where
// Tokenizer::Decode would put one, so the concatenation of all deltas plus
// Finish() equals Decode(all ids) byte for byte. Deltas are always valid
// UTF-8 and never split a character.
//
// Not thread-safe (one per stream); the Tokenizer must outlive it.
#pragma once

#include <cstdint>
#include <string>

#include "engine/tokenizer/tokenizer.h"

namespace dms {

class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer& tokenizer, bool skip_special = false)
      : tokenizer_(tokenizer), skip_special_(skip_special) {}

  // Feeds one id and returns the text it completes (possibly empty).
  std::string Add(int32_t id);
  // Same, appending the delta to *delta.
  void Add(int32_t id, std::string* delta);

  // Ends the stream: an incomplete trailing character becomes U+FFFD.
  std::string Finish();

  // Bytes held back, waiting for the rest of a character (at most 3).
  size_t pending_bytes() const { return pending_.size(); }
  // Number of ids fed so far.
  size_t num_ids() const { return num_ids_; }

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::string pending_;
  size_t num_ids_ = 0;
};

}  // namespace dms
