// Fuzz target: the real Qwen3 tokenizer, Encode / Decode / IncrementalDetokenizer.
//
// Input: byte 0 holds flags (bit 0 allow_special, bit 1 skip_special, bit 2
// selects the id mode); the rest is either text (text mode) or a recipe for
// token ids (id mode). Properties:
//   text mode: every id is in the vocabulary; encoding is deterministic (the
//     BPE word cache changes nothing) and EncodeTo appends exactly Encode;
//     Decode(Encode(s)) equals s with invalid UTF-8 replaced by U+FFFD and
//     each stretch between added tokens put in NFC (utf8proc's full algorithm,
//     not the tokenizer's fast path), added tokens matched leftmost-longest by
//     a naive independent scan; with skip_special the special ones vanish.
//   both modes: Decode is valid UTF-8, and the IncrementalDetokenizer's
//     deltas are each valid UTF-8, hold back at most 3 bytes, and concatenate
//     (with Finish) to Decode, byte for byte.
#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tokenizer/incremental_detokenizer.h"
#include "engine/tokenizer/utf8.h"
#include "tests/fuzz/fuzz_util.h"

namespace dms::fuzz {
namespace {

struct Added {
  std::string content;
  int32_t id;
  bool special;
};

// What the tests need to know about the vocabulary, computed once.
struct Vocab {
  std::vector<Added> added;            // every added token
  std::array<int32_t, 256> byte_ids;   // the token of each single byte
};

const Vocab& GetVocab() {
  static const Vocab* const kVocab = [] {
    const Tokenizer& tok = QwenTokenizer();
    auto* v = new Vocab();
    v->byte_ids.fill(-1);
    for (int32_t id = 0; id < static_cast<int32_t>(tok.vocab_size()); ++id) {
      std::string bytes;
      tok.AppendTokenBytes(id, /*skip_special=*/false, &bytes);
      if (tok.IsAddedToken(id)) {
        FUZZ_CHECK(bytes == tok.IdToToken(id), "added token " + std::to_string(id) + " decodes to " + Printable(bytes));
        v->added.push_back({bytes, id, tok.IsSpecial(id)});
      } else if (bytes.size() == 1) {
        v->byte_ids[static_cast<uint8_t>(bytes[0])] = id;
      }
    }
    for (int b = 0; b < 256; ++b) FUZZ_CHECK(v->byte_ids[b] >= 0, "no token for byte " + std::to_string(b));
    FUZZ_CHECK(!v->added.empty(), "the Qwen3 tokenizer has added tokens");
    return v;
  }();
  return *kVocab;
}

// The text Decode(Encode(text)) must give: an independent model of the
// pipeline (lossy UTF-8 repair, added-token split, NFC per stretch).
std::string ExpectedRoundTrip(std::string_view raw, bool allow_special, bool skip_special) {
  const std::string text = utf8::IsValid(raw) ? std::string(raw) : utf8::DecodeLossy(raw);
  std::string out;
  size_t start = 0;  // of the current ordinary stretch
  size_t pos = 0;
  while (pos < text.size()) {
    const Added* best = nullptr;
    for (const Added& a : GetVocab().added) {
      if (a.special && !allow_special) continue;
      if (text.compare(pos, a.content.size(), a.content) == 0 &&
          (best == nullptr || a.content.size() > best->content.size())) {
        best = &a;
      }
    }
    if (best == nullptr) {
      ++pos;
      continue;
    }
    out += ReferenceNfc(std::string_view(text).substr(start, pos - start));
    if (!(skip_special && best->special)) out += best->content;
    pos += best->content.size();
    start = pos;
  }
  out += ReferenceNfc(std::string_view(text).substr(start));
  return out;
}

void CheckIncremental(const Tokenizer& tok, const std::vector<int32_t>& ids, bool skip_special) {
  const std::string decoded = tok.Decode(ids, skip_special);
  FUZZ_CHECK(utf8::IsValid(decoded), "Decode is not valid UTF-8: " + Printable(decoded));
  IncrementalDetokenizer detok(tok, skip_special);
  std::string joined;
  for (size_t i = 0; i < ids.size(); ++i) {
    const std::string delta = detok.Add(ids[i]);
    FUZZ_CHECK(utf8::IsValid(delta), "delta " + std::to_string(i) + " is not valid UTF-8: " + Printable(delta));
    FUZZ_CHECK(detok.pending_bytes() <= 3, "holds back " + std::to_string(detok.pending_bytes()) + " bytes");
    joined += delta;
  }
  const std::string rest = detok.Finish();
  FUZZ_CHECK(utf8::IsValid(rest), "Finish is not valid UTF-8: " + Printable(rest));
  joined += rest;
  FUZZ_CHECK(joined == decoded, "deltas \"" + Printable(joined) + "\" != Decode \"" + Printable(decoded) + "\"");
  FUZZ_CHECK(detok.num_ids() == ids.size(), "num_ids " + std::to_string(detok.num_ids()));
}

void TextMode(const Tokenizer& tok, std::string_view text, bool allow_special, bool skip_special) {
  const std::vector<int32_t> ids = tok.Encode(text, allow_special);
  for (int32_t id : ids) {
    FUZZ_CHECK(id >= 0 && static_cast<size_t>(id) < tok.vocab_size(), "id " + std::to_string(id));
  }
  FUZZ_CHECK(tok.Encode(text, allow_special) == ids, "a second Encode differs: " + Printable(text));
  std::vector<int32_t> appended = {42};
  tok.EncodeTo(text, allow_special, &appended);
  FUZZ_CHECK(appended.size() == ids.size() + 1 && appended[0] == 42 &&
                 std::equal(ids.begin(), ids.end(), appended.begin() + 1),
             "EncodeTo does not append Encode's ids");

  const std::string decoded = tok.Decode(ids, /*skip_special=*/false);
  const std::string expected = ExpectedRoundTrip(text, allow_special, /*skip_special=*/false);
  FUZZ_CHECK(decoded == expected, "Decode(Encode(s)) = \"" + Printable(decoded) + "\", expected \"" +
                                      Printable(expected) + "\" for s = \"" + Printable(text) + "\"");
  if (skip_special) {
    const std::string skipped = tok.Decode(ids, /*skip_special=*/true);
    const std::string want = ExpectedRoundTrip(text, allow_special, /*skip_special=*/true);
    FUZZ_CHECK(skipped == want, "Decode(Encode(s), skip_special) = \"" + Printable(skipped) +
                                    "\", expected \"" + Printable(want) + "\"");
  }
  CheckIncremental(tok, ids, skip_special);
}

// Ids from a recipe: mostly single-byte tokens (they split UTF-8 characters,
// the detokenizer's hard case), any vocabulary id, added tokens, and ids
// outside the vocabulary (Decode drops them).
std::vector<int32_t> IdsFrom(ByteReader& in, const Tokenizer& tok) {
  const Vocab& v = GetVocab();
  const auto n = static_cast<int64_t>(tok.vocab_size());
  std::vector<int32_t> ids;
  while (in.remaining() > 0 && ids.size() < 4096) {
    const uint8_t sel = in.Byte();
    if (sel < 128) {
      ids.push_back(v.byte_ids[in.Byte()]);
    } else if (sel < 224) {
      const uint32_t r = in.Byte() | (in.Byte() << 8) | (in.Byte() << 16);
      ids.push_back(static_cast<int32_t>(r % n));
    } else if (sel < 248) {
      ids.push_back(v.added[in.Byte() % v.added.size()].id);
    } else {
      static constexpr int64_t kOdd[] = {-1, INT32_MIN, INT32_MAX};
      const size_t k = in.Byte() % 5;
      ids.push_back(static_cast<int32_t>(k < 3 ? kOdd[k] : n + static_cast<int64_t>(k - 3)));
    }
  }
  return ids;
}

}  // namespace
}  // namespace dms::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  dms::fuzz::GetVocab();  // load before the first input, not during it
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dms::fuzz;
  const dms::Tokenizer& tok = QwenTokenizer();
  ByteReader in(data, size);
  const uint8_t flags = in.Byte();
  const bool allow_special = flags & 1, skip_special = flags & 2;
  if (flags & 4) {
    CheckIncremental(tok, IdsFrom(in, tok), skip_special);
  } else {
    TextMode(tok, in.Rest(), allow_special, skip_special);
  }
  return 0;
}
