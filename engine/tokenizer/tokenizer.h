// The Qwen3 tokenizer: byte-level BPE read from a Hugging Face tokenizer.json,
// producing exactly the ids of Hugging Face `tokenizers` (docs/tokenizer.md
// argues why, step by step).
//
// Encode: added tokens are split out of the raw text first; each remaining
// segment is NFC-normalized, split by the pre-tokenizer regex, and each piece
// is BPE-encoded from its bytes. Decode: each id's bytes (byte-level map
// inverted) are concatenated and invalid UTF-8 becomes U+FFFD as Python's
// errors='replace' does.
//
// Thread safety: after Load, every const method may be called concurrently
// from any number of threads (the word cache inside is internally locked).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/added_tokens.h"
#include "engine/tokenizer/bpe.h"
#include "engine/tokenizer/split_regex.h"
#include "common/status.h"

namespace dms {

class Tokenizer {
 public:
  struct Options {
    size_t word_cache_entries = 1 << 15;  // 0 disables the BPE word cache
  };

  // `path` is a tokenizer.json file or a directory holding one. A
  // tokenizer_config.json next to it (optional) supplies eos_token and the
  // chat template. Errors: NOT_FOUND for a missing file; INVALID_ARGUMENT
  // naming the file and field that is malformed or unsupported.
  static StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& path);
  static StatusOr<std::unique_ptr<Tokenizer>> Load(const std::string& path, Options options);

  // Ids of `text` (no special tokens are added). With allow_special, added
  // tokens written in the text (e.g. "<|im_end|>") become their ids; without
  // it, tokens marked special are encoded as plain text, while non-special
  // added tokens (<think>, </think>, <tool_call>...) are still recognised, as
  // Hugging Face's split_special_tokens=True does. Invalid UTF-8 in `text`
  // is first replaced by U+FFFD.
  std::vector<int32_t> Encode(std::string_view text, bool allow_special = true) const;
  // Same, appending to *ids.
  void EncodeTo(std::string_view text, bool allow_special, std::vector<int32_t>* ids) const;

  // Text of `ids`: unknown ids (outside [0, vocab_size())) are dropped and,
  // with skip_special, so are special added tokens, as Hugging Face does.
  std::string Decode(std::span<const int32_t> ids, bool skip_special = false) const;

  // Appends the raw bytes of one id (possibly a partial UTF-8 character);
  // nothing for unknown ids or, with skip_special, special tokens.
  void AppendTokenBytes(int32_t id, bool skip_special, std::string* out) const;

  // Vocab token string ("Ġhello", "<|im_end|>"), or "" for unknown ids.
  std::string IdToToken(int32_t id) const;
  // Id of a vocab or added token string, or -1.
  int32_t TokenToId(std::string_view token) const;
  // Highest id + 1, added tokens included (151669 for Qwen3).
  size_t vocab_size() const { return id_bytes_.size(); }
  bool IsSpecial(int32_t id) const;
  bool IsAddedToken(int32_t id) const { return added_.FindById(id) != nullptr; }

  // eos_token of tokenizer_config.json (default "<|im_end|>").
  int32_t eos_id() const { return eos_id_; }
  const std::string& eos_token() const { return eos_token_; }
  // <|endoftext|> (Qwen3's pad token and document end), -1 if absent.
  int32_t endoftext_id() const { return endoftext_id_; }
  int32_t im_start_id() const { return im_start_id_; }
  int32_t im_end_id() const { return im_end_id_; }
  // Ids that end generation: eos and <|endoftext|> (deduplicated).
  std::vector<int32_t> stop_ids() const;

  // The Jinja chat template of tokenizer_config.json, or "" if none.
  const std::string& chat_template() const { return chat_template_; }

  // The BPE model (for tests and tools).
  const BpeModel& bpe_model() const { return *bpe_; }

  // For the benchmark: empties the BPE word cache.
  void ClearCache() const { bpe_->cache().Clear(); }

 private:
  Tokenizer() = default;
  friend class TokenizerLoader;

  void EncodeSegment(std::string_view text, std::vector<int32_t>* ids) const;

  std::unique_ptr<BpeModel> bpe_;
  std::unique_ptr<SplitRegex> split_;
  AddedTokens added_;
  bool nfc_ = true;
  std::vector<std::string> id_bytes_;  // decoded bytes of every id
  std::vector<uint8_t> special_;       // 1 for special added tokens

  std::string eos_token_ = "<|im_end|>";
  int32_t eos_id_ = -1, endoftext_id_ = -1, im_start_id_ = -1, im_end_id_ = -1;
  std::string chat_template_;
};

}  // namespace dms
