// Streaming detokenization: deltas are whole UTF-8 characters, and their
// concatenation equals Decode(all ids), for any id sequence.
#include "engine/tokenizer/incremental_detokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/utf8.h"
#include "tests/tokenizer/tokenizer_test_util.h"

namespace dms {
namespace {

using testing::RealTokenizer;
using Ids = std::vector<int32_t>;

// Streams `ids`; checks every delta is valid UTF-8; returns the whole text.
std::string Stream(const Ids& ids, bool skip_special, std::vector<std::string>* deltas = nullptr) {
  IncrementalDetokenizer detok(RealTokenizer(), skip_special);
  std::string text;
  for (int32_t id : ids) {
    std::string d = detok.Add(id);
    EXPECT_TRUE(utf8::IsValid(d)) << ::testing::PrintToString(d);
    EXPECT_LE(detok.pending_bytes(), 3u);
    text += d;
    if (deltas) deltas->push_back(d);
  }
  std::string rest = detok.Finish();
  EXPECT_TRUE(utf8::IsValid(rest));
  if (deltas) deltas->push_back(rest);
  EXPECT_EQ(detok.pending_bytes(), 0u);
  return text + rest;
}

int32_t ByteToken(uint8_t b) {
  return RealTokenizer().TokenToId(ByteLevelMap::Get().Encode(std::string(1, static_cast<char>(b))));
}

TEST(IncrementalDetokenizer, HoldsBackPartialCharacters) {
  // 你 (E4 BD A0) fed one byte-token at a time, then "a".
  Ids ids = {ByteToken(0xE4), ByteToken(0xBD), ByteToken(0xA0), 64};
  std::vector<std::string> deltas;
  EXPECT_EQ(Stream(ids, false, &deltas), "\xE4\xBD\xA0" "a");
  EXPECT_EQ(deltas, (std::vector<std::string>{"", "", "\xE4\xBD\xA0", "a", ""}));
}

TEST(IncrementalDetokenizer, InvalidBytesBecomeReplacementWhereDecodePutsThem) {
  const Tokenizer& tok = RealTokenizer();
  Ids ids = {ByteToken(0xE4), ByteToken(0xBD), 64, ByteToken(0xF0), ByteToken(0x9F)};
  std::vector<std::string> deltas;
  std::string text = Stream(ids, false, &deltas);
  EXPECT_EQ(text, tok.Decode(ids));
  EXPECT_EQ(text, "\xEF\xBF\xBD" "a\xEF\xBF\xBD");
  // The first U+FFFD is known once "a" arrives; the last only at Finish.
  EXPECT_EQ(deltas, (std::vector<std::string>{"", "", "\xEF\xBF\xBD" "a", "", "", "\xEF\xBF\xBD"}));
}

TEST(IncrementalDetokenizer, SkipSpecial) {
  const Tokenizer& tok = RealTokenizer();
  Ids ids = tok.Encode("<|im_start|>assistant\n<think>\nhm\n</think>\n\nHi!<|im_end|>");
  EXPECT_EQ(Stream(ids, true), tok.Decode(ids, true));
  EXPECT_EQ(Stream(ids, true), "assistant\n<think>\nhm\n</think>\n\nHi!");
  EXPECT_EQ(Stream(ids, false), tok.Decode(ids, false));
}

TEST(IncrementalDetokenizer, TextsOfEveryScript) {
  const Tokenizer& tok = RealTokenizer();
  for (std::string text :
       {"Hello, world!", "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C",
        "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\xA8\xE2\x80\x8D\xF0\x9F\x91\xA9 \xF0\x9F\x8F\xB3\xEF\xB8\x8F",
        "\xE0\xA4\xA8\xE0\xA4\xAE\xE0\xA4\xB8\xE0\xA5\x8D\xE0\xA4\xA4\xE0\xA5\x87"}) {
    Ids ids = tok.Encode(text);
    EXPECT_EQ(Stream(ids, false), text);
  }
}

// Random id sequences, biased towards byte tokens that split characters.
TEST(IncrementalDetokenizer, RandomIdsConcatenateToDecode) {
  const Tokenizer& tok = RealTokenizer();
  std::mt19937 rng(17);
  Ids bytes;
  for (int b = 0x80; b < 0x100; ++b) bytes.push_back(ByteToken(static_cast<uint8_t>(b)));
  for (int n = 0; n < 2000; ++n) {
    Ids ids(rng() % 20);
    for (int32_t& id : ids) {
      switch (rng() % 4) {
        case 0: id = bytes[rng() % bytes.size()]; break;
        case 1: id = static_cast<int32_t>(rng() % 151700) - 10; break;  // some invalid
        case 2: id = 151643 + static_cast<int32_t>(rng() % 26); break;  // added tokens
        default: id = static_cast<int32_t>(rng() % 151643); break;
      }
    }
    bool skip = rng() % 2;
    ASSERT_EQ(Stream(ids, skip), tok.Decode(ids, skip)) << ::testing::PrintToString(ids);
  }
}

}  // namespace
}  // namespace dms
