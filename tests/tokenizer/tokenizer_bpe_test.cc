// The BPE merge loop: a tiny hand-made model with known answers, and the
// two merge algorithms (small-word scan, large-word heap) agreeing on the
// real Qwen3 merges.
#include "engine/tokenizer/bpe.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/utf8.h"
#include "tests/tokenizer/tokenizer_test_util.h"

namespace dms {
namespace {

// Vocab: the 256 byte-level characters (id = byte) plus `extra` tokens.
BpeModel::Vocab ByteVocab(const std::vector<std::string>& extra) {
  BpeModel::Vocab vocab;
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    utf8::Append(ByteLevelMap::Get().CharFor(static_cast<uint8_t>(b)), &ch);
    vocab[ch] = b;
  }
  int32_t id = 256;
  for (const std::string& t : extra) vocab[t] = id++;
  return vocab;
}

std::vector<int32_t> Encode(const BpeModel& model, const std::string& word) {
  BpeModel::Scratch scratch;
  std::vector<int32_t> out;
  model.EncodeWord(word, &scratch, &out);
  return out;
}

TEST(Bpe, LowestRankFirstLeftmostOnTies) {
  // Ranks: 0 "ab", 1 "bc", 2 "abc" (from ab+c), 3 "aa".
  auto model = BpeModel::Create(ByteVocab({"ab", "bc", "abc", "aa"}),
                                {{"a", "b"}, {"b", "c"}, {"ab", "c"}, {"a", "a"}}, false, 0);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ(Encode(**model, "abc"), (std::vector<int32_t>{258}));        // ab, then abc
  EXPECT_EQ(Encode(**model, "bc"), (std::vector<int32_t>{257}));
  EXPECT_EQ(Encode(**model, "aaa"), (std::vector<int32_t>{259, 'a'}));   // leftmost pair first
  EXPECT_EQ(Encode(**model, "aaaa"), (std::vector<int32_t>{259, 259}));
  EXPECT_EQ(Encode(**model, "xbc"), (std::vector<int32_t>{'x', 257}));
  EXPECT_EQ(Encode(**model, "z"), (std::vector<int32_t>{'z'}));
}

TEST(Bpe, ByteLevelCharactersStandForBytes) {
  // "Ġ" is the byte-level character of ' ' (0x20).
  auto model = BpeModel::Create(ByteVocab({"Ġa"}), {{"Ġ", "a"}}, false, 0);
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(Encode(**model, " a"), (std::vector<int32_t>{256}));
  EXPECT_EQ((*model)->ByteId(' '), ' ');
}

TEST(Bpe, CreateErrors) {
  auto missing_merge = BpeModel::Create(ByteVocab({}), {{"a", "b"}}, false, 0);
  ASSERT_FALSE(missing_merge.ok());
  EXPECT_EQ(missing_merge.status().message(), "model.merges[0]: token 'ab' is not in the vocab");

  BpeModel::Vocab no_bytes = {{"a", 0}};
  auto not_byte_level = BpeModel::Create(no_bytes, {}, false, 0);
  ASSERT_FALSE(not_byte_level.ok());
  EXPECT_EQ(not_byte_level.status().message(),
            "model.vocab: no token for byte 0 ('\xC4\x80'); not a byte-level BPE vocab");
}

TEST(Bpe, IgnoreMergesTakesWholeWordTokens) {
  // Merges alone would give [ab, cd]; with ignore_merges the vocab token wins.
  auto model = BpeModel::Create(ByteVocab({"ab", "cd", "abcd"}), {{"a", "b"}, {"c", "d"}}, true, 0);
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(Encode(**model, "abcd"), (std::vector<int32_t>{258}));
  auto plain = BpeModel::Create(ByteVocab({"ab", "cd", "abcd"}), {{"a", "b"}, {"c", "d"}}, false, 0);
  EXPECT_EQ(Encode(**plain, "abcd"), (std::vector<int32_t>{256, 257}));
}

// Both merge algorithms must give identical results on the real merges, for
// random words of every length around the switch-over point.
TEST(Bpe, SmallAndLargeAlgorithmsAgreeOnQwenMerges) {
  const BpeModel& bpe = testing::RealTokenizer().bpe_model();
  std::mt19937 rng(5);
  const char* alphabet[] = {"a", "e", "t", "n", " ", "th", "in", "\xE4\xBD\xA0", "\xE5\xA5\xBD",
                            "\xE7\x9A\x84", "1", "\xF0\x9F\x98\x80", "ing", "er", "\n", "."};
  BpeModel::Scratch scratch;
  std::vector<int32_t> ranks;
  size_t longest = 0;
  for (int n = 0; n < 3000; ++n) {
    std::string word;
    int parts = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < parts; ++i) word += alphabet[rng() % 16];
    std::vector<int32_t> a;
    for (char c : word) a.push_back(bpe.ByteId(static_cast<uint8_t>(c)));
    std::vector<int32_t> b = a;
    bpe.MergeSmall(&a, &ranks);
    bpe.MergeLarge(&b, &scratch);
    ASSERT_EQ(a, b) << testing::Quote(word);
    longest = std::max(longest, word.size());
  }
  EXPECT_GT(longest, BpeModel::kSmallWord);  // both sides of the switch-over
}

}  // namespace
}  // namespace dms
