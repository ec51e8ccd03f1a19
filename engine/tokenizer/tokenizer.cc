#include "engine/tokenizer/tokenizer.h"

#include <algorithm>

#include "engine/tokenizer/nfc.h"
#include "engine/tokenizer/utf8.h"

namespace dms {
namespace {

// Buffers reused across the segments and pieces of one Encode call.
struct EncodeScratch {
  std::vector<AddedTokens::Segment> segments;
  std::vector<SplitRegex::Piece> pieces;
  std::string normalized;
  SplitRegex::Scratch split;
  BpeModel::Scratch bpe;
};

// One per thread: an Encode call then allocates nothing once warm.
EncodeScratch& ThreadScratch() {
  thread_local EncodeScratch scratch;
  return scratch;
}

}  // namespace

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool allow_special) const {
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  EncodeTo(text, allow_special, &ids);
  return ids;
}

void Tokenizer::EncodeTo(std::string_view text, bool allow_special,
                         std::vector<int32_t>* ids) const {
  std::string repaired;
  if (!utf8::IsValid(text)) {
    repaired = utf8::DecodeLossy(text);
    text = repaired;
  }
  // Segments are consumed before any nested use of the scratch (EncodeSegment
  // uses only the other buffers), so one thread-local set is enough.
  std::vector<AddedTokens::Segment> segments;
  segments.swap(ThreadScratch().segments);
  segments.clear();
  added_.Split(text, allow_special, &segments);
  for (const AddedTokens::Segment& seg : segments) {
    if (seg.token_id >= 0) {
      ids->push_back(seg.token_id);
    } else {
      EncodeSegment(text.substr(seg.begin, seg.end - seg.begin), ids);
    }
  }
  segments.swap(ThreadScratch().segments);
}

void Tokenizer::EncodeSegment(std::string_view text, std::vector<int32_t>* ids) const {
  EncodeScratch& scratch = ThreadScratch();
  std::string_view normalized = nfc_ ? NormalizeNfc(text, &scratch.normalized) : text;
  scratch.pieces.clear();
  split_->Split(normalized, &scratch.split, &scratch.pieces);
  for (const SplitRegex::Piece& piece : scratch.pieces) {
    bpe_->EncodeWord(normalized.substr(piece.begin, piece.end - piece.begin), &scratch.bpe, ids);
  }
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool skip_special) const {
  std::string bytes;
  for (int32_t id : ids) AppendTokenBytes(id, skip_special, &bytes);
  if (utf8::IsValid(bytes)) return bytes;
  return utf8::DecodeLossy(bytes);
}

void Tokenizer::AppendTokenBytes(int32_t id, bool skip_special, std::string* out) const {
  if (id < 0 || static_cast<size_t>(id) >= id_bytes_.size()) return;
  if (skip_special && special_[id]) return;
  out->append(id_bytes_[id]);
}

std::string Tokenizer::IdToToken(int32_t id) const {
  if (const AddedToken* added = added_.FindById(id)) return added->content;
  return bpe_->IdToToken(id);
}

int32_t Tokenizer::TokenToId(std::string_view token) const {
  if (const AddedToken* added = added_.FindByContent(token)) return added->id;
  return bpe_->TokenToId(token);
}

bool Tokenizer::IsSpecial(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < special_.size() && special_[id];
}

std::vector<int32_t> Tokenizer::stop_ids() const {
  std::vector<int32_t> stops;
  if (eos_id_ >= 0) stops.push_back(eos_id_);
  if (endoftext_id_ >= 0 && endoftext_id_ != eos_id_) stops.push_back(endoftext_id_);
  return stops;
}

}  // namespace dms
