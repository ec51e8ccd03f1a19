#include "engine/tokenizer/incremental_detokenizer.h"

#include "engine/tokenizer/utf8.h"

namespace dms {

std::string IncrementalDetokenizer::Add(int32_t id) {
  std::string delta;
  Add(id, &delta);
  return delta;
}

void IncrementalDetokenizer::Add(int32_t id, std::string* delta) {
  ++num_ids_;
  tokenizer_.AppendTokenBytes(id, skip_special_, &pending_);
  std::string_view bytes = pending_;
  size_t i = 0, run = 0;  // [run, i): well-formed, not yet emitted
  while (i < bytes.size()) {
    if (static_cast<uint8_t>(bytes[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t len = utf8::ValidSequenceLength(bytes, i);
    if (len > 0) {
      i += len;
      continue;
    }
    // A prefix that later bytes may complete: wait for them. Otherwise the
    // maximal subpart is final (a later byte cannot change it): replace it.
    if (utf8::IsIncompletePrefix(bytes, i)) break;
    delta->append(bytes.substr(run, i - run));
    delta->append(utf8::kReplacement);
    i += utf8::MaximalSubpartLength(bytes, i);
    run = i;
  }
  delta->append(bytes.substr(run, i - run));
  pending_.erase(0, i);
}

std::string IncrementalDetokenizer::Finish() {
  std::string rest = utf8::DecodeLossy(pending_);
  pending_.clear();
  return rest;
}

}  // namespace dms
