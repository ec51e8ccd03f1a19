// Added tokens (tokenizer.json "added_tokens": <|im_end|>, <think>, ...):
// matched in the raw text before normalization and pre-tokenization, as
// Hugging Face's AddedVocabulary does: at each position the leftmost match
// wins, the longest one among those starting there, non-overlapping.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dms {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;  // skipped by skip_special_tokens; see allow_special
  bool lstrip = false;   // the match also takes the whitespace before it
  bool rstrip = false;   // ... and after it
};

class AddedTokens {
 public:
  struct Segment {
    size_t begin, end;  // byte range of the text
    int32_t token_id;   // -1: ordinary text to normalize and BPE
  };

  void Add(AddedToken token);

  // Splits `text` into ordinary segments and added-token matches. With
  // allow_special false, tokens marked special are not matched (they are
  // encoded as ordinary text; Hugging Face's encode_special_tokens), while
  // non-special added tokens such as <think> still are.
  void Split(std::string_view text, bool allow_special, std::vector<Segment>* out) const;

  const AddedToken* FindById(int32_t id) const;
  const AddedToken* FindByContent(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  // Longest token matching at text[pos], or nullptr.
  const AddedToken* MatchAt(std::string_view text, size_t pos) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  // Tokens (indices) by first byte, longest first; a cheap pre-filter.
  std::array<std::vector<size_t>, 256> by_first_byte_;
};

}  // namespace dms
