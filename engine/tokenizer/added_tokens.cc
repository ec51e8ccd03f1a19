#include "engine/tokenizer/added_tokens.h"

#include <algorithm>

#include "engine/tokenizer/utf8.h"

namespace dms {
namespace {

// Rust's char::is_whitespace (Unicode White_Space), used by lstrip/rstrip.
bool IsWhiteSpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// Start of the whitespace run that ends at text[end].
size_t WhiteSpaceRunStart(std::string_view text, size_t end) {
  size_t pos = end;
  while (pos > 0) {
    size_t start = pos - 1;
    while (start > 0 && (static_cast<uint8_t>(text[start]) & 0xC0) == 0x80) --start;
    size_t len;
    if (!IsWhiteSpace(utf8::DecodeAt(text, start, &len))) break;
    pos = start;
  }
  return pos;
}

// End of the whitespace run that starts at text[begin].
size_t WhiteSpaceRunEnd(std::string_view text, size_t begin) {
  size_t pos = begin;
  while (pos < text.size()) {
    size_t len;
    if (!IsWhiteSpace(utf8::DecodeAt(text, pos, &len))) break;
    pos += len;
  }
  return pos;
}

}  // namespace

void AddedTokens::Add(AddedToken token) {
  size_t index = tokens_.size();
  by_id_[token.id] = index;
  by_content_[token.content] = index;
  if (!token.content.empty()) {
    auto& bucket = by_first_byte_[static_cast<uint8_t>(token.content[0])];
    bucket.push_back(index);
    std::stable_sort(bucket.begin(), bucket.end(), [this, &token, index](size_t a, size_t b) {
      const std::string& ca = a == index ? token.content : tokens_[a].content;
      const std::string& cb = b == index ? token.content : tokens_[b].content;
      return ca.size() > cb.size();
    });
  }
  tokens_.push_back(std::move(token));
}

const AddedToken* AddedTokens::MatchAt(std::string_view text, size_t pos) const {
  for (size_t index : by_first_byte_[static_cast<uint8_t>(text[pos])]) {
    const std::string& c = tokens_[index].content;
    if (text.compare(pos, c.size(), c) == 0) return &tokens_[index];
  }
  return nullptr;
}

void AddedTokens::Split(std::string_view text, bool allow_special,
                        std::vector<Segment>* out) const {
  size_t emitted = 0;  // text[0, emitted) is in *out
  size_t pos = 0;
  while (pos < text.size()) {
    if (by_first_byte_[static_cast<uint8_t>(text[pos])].empty()) {
      ++pos;
      continue;
    }
    const AddedToken* token = MatchAt(text, pos);
    if (token == nullptr) {
      ++pos;
      continue;
    }
    size_t stop = pos + token->content.size();
    if (token->special && !allow_special) {
      // Matched and then ignored, as Hugging Face does: its span stays text.
      pos = stop;
      continue;
    }
    size_t start = pos;
    if (token->lstrip) start = std::max(WhiteSpaceRunStart(text, start), emitted);
    if (token->rstrip) stop = WhiteSpaceRunEnd(text, stop);
    if (start > emitted) out->push_back({emitted, start, -1});
    out->push_back({start, stop, token->id});
    emitted = pos = stop;
  }
  if (emitted < text.size()) out->push_back({emitted, text.size(), -1});
}

const AddedToken* AddedTokens::FindById(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

const AddedToken* AddedTokens::FindByContent(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  return it == by_content_.end() ? nullptr : &tokens_[it->second];
}

}  // namespace dms
