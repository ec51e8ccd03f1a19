#include "engine/runtime/text_output.h"

#include <algorithm>

namespace dms {

TextOutput::TextOutput(const Tokenizer* tokenizer, std::vector<std::string> stop_strings)
    : detok_(*tokenizer, /*skip_special=*/true), stops_(std::move(stop_strings)) {}

size_t TextOutput::HeldSuffix() const {
  size_t best = 0;
  for (const std::string& s : stops_) {
    const size_t max = std::min(s.size() - 1, held_.size());
    for (size_t len = max; len > best; --len) {
      if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
        best = len;
        break;
      }
    }
  }
  return best;
}

std::string TextOutput::Add(int32_t id, bool* stopped, std::string* matched) {
  *stopped = false;
  detok_.Add(id, &held_);
  if (!stops_.empty()) {
    // Earliest stop string occurrence wins.
    size_t first = std::string::npos;
    const std::string* which = nullptr;
    for (const std::string& s : stops_) {
      const size_t at = held_.find(s);
      if (at != std::string::npos && at < first) {
        first = at;
        which = &s;
      }
    }
    if (which != nullptr) {
      *stopped = true;
      *matched = *which;
      std::string out = held_.substr(0, first);
      held_.clear();
      return out;
    }
  }
  // Stream everything except a tail that may begin a stop string. Held-back
  // text never ends inside a UTF-8 character because detok_ only appends
  // whole characters and stop strings are valid UTF-8.
  const size_t keep = HeldSuffix();
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string TextOutput::Flush() {
  std::string out = std::move(held_);
  held_.clear();
  out += detok_.Finish();
  return out;
}

}  // namespace dms
