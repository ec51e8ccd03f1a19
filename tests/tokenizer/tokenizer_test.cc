// The real Qwen3 tokenizer: ids of special tokens, added-token handling,
// decoding rules, round trips on random text and bytes, thread safety.
#include "engine/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/nfc.h"
#include "engine/tokenizer/utf8.h"
#include "tests/tokenizer/tokenizer_test_util.h"

namespace dms {
namespace {

using testing::Quote;
using testing::RealTokenizer;
using Ids = std::vector<int32_t>;

int32_t ByteToken(uint8_t b) {
  return RealTokenizer().TokenToId(ByteLevelMap::Get().Encode(std::string(1, static_cast<char>(b))));
}

TEST(Tokenizer, VocabAndSpecialIds) {
  const Tokenizer& tok = RealTokenizer();
  EXPECT_EQ(tok.vocab_size(), 151669u);
  EXPECT_EQ(tok.eos_token(), "<|im_end|>");
  EXPECT_EQ(tok.eos_id(), 151645);
  EXPECT_EQ(tok.endoftext_id(), 151643);
  EXPECT_EQ(tok.im_start_id(), 151644);
  EXPECT_EQ(tok.im_end_id(), 151645);
  EXPECT_EQ(tok.stop_ids(), (Ids{151645, 151643}));
  EXPECT_EQ(tok.IdToToken(9707), "Hello");
  EXPECT_EQ(tok.IdToToken(1879), "\xC4\xA0world");  // "Ġworld"
  EXPECT_EQ(tok.TokenToId("Hello"), 9707);
  EXPECT_EQ(tok.TokenToId("<think>"), 151667);
  EXPECT_EQ(tok.IdToToken(151668), "</think>");
  EXPECT_EQ(tok.TokenToId("no such token"), -1);
  EXPECT_EQ(tok.IdToToken(-1), "");
  EXPECT_EQ(tok.IdToToken(151669), "");
  EXPECT_TRUE(tok.IsSpecial(151645));
  EXPECT_TRUE(tok.IsSpecial(151643));
  EXPECT_FALSE(tok.IsSpecial(151667));  // <think> is added but not special
  EXPECT_TRUE(tok.IsAddedToken(151667));
  EXPECT_FALSE(tok.IsSpecial(9707));
  EXPECT_FALSE(tok.chat_template().empty());
}

TEST(Tokenizer, AddedTokensInText) {
  const Tokenizer& tok = RealTokenizer();
  EXPECT_EQ(tok.Encode("a<|im_end|>b"), (Ids{64, 151645, 65}));
  EXPECT_EQ(tok.Encode("<|im_start|><|im_start|>"), (Ids{151644, 151644}));
  EXPECT_EQ(tok.Encode("<think>\nx</think>"), (Ids{151667, 198, 87, 151668}));
  // A prefix of a special token is ordinary text.
  Ids partial = tok.Encode("<|im_end");
  EXPECT_EQ(std::count(partial.begin(), partial.end(), 151645), 0);
  EXPECT_EQ(tok.Decode(partial), "<|im_end");
}

TEST(Tokenizer, SpecialTokensAsPlainTextWhenNotAllowed) {
  const Tokenizer& tok = RealTokenizer();
  Ids ids = tok.Encode("a<|im_end|>b<think>c", /*allow_special=*/false);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 151645), 0);  // special: plain text
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 151667), 1);  // non-special: still matched
  EXPECT_EQ(tok.Decode(ids), "a<|im_end|>b<think>c");
  EXPECT_EQ(tok.Decode(tok.Encode("<|endoftext|>", false)), "<|endoftext|>");
  EXPECT_GT(tok.Encode("<|endoftext|>", false).size(), 1u);
}

TEST(Tokenizer, DecodeSkipsSpecialTokensOnlyWhenAsked) {
  const Tokenizer& tok = RealTokenizer();
  Ids ids = {151644, 872, 198, 13048, 151645, 198, 151667, 151668};
  EXPECT_EQ(tok.Decode(ids), "<|im_start|>user\nHi<|im_end|>\n<think></think>");
  EXPECT_EQ(tok.Decode(ids, /*skip_special=*/true), "user\nHi\n<think></think>");
}

TEST(Tokenizer, DecodeDropsUnknownIds) {
  const Tokenizer& tok = RealTokenizer();
  EXPECT_EQ(tok.Decode(Ids{9707, 151669, -5, 1000000, 0}), "Hello!");
}

TEST(Tokenizer, DecodeReplacesBrokenUtf8LikePython) {
  const Tokenizer& tok = RealTokenizer();
  int32_t e4 = ByteToken(0xE4), bd = ByteToken(0xBD), a0 = ByteToken(0xA0);
  ASSERT_GE(e4, 0);
  EXPECT_EQ(tok.Decode(Ids{e4, bd, a0}), "\xE4\xBD\xA0");                   // 你
  EXPECT_EQ(tok.Decode(Ids{e4, bd}), "\xEF\xBF\xBD");                       // one U+FFFD
  EXPECT_EQ(tok.Decode(Ids{e4, 64}), "\xEF\xBF\xBD" "a");
  EXPECT_EQ(tok.Decode(Ids{a0, a0}), "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(Tokenizer, EmptyAndInvalidInput) {
  const Tokenizer& tok = RealTokenizer();
  EXPECT_TRUE(tok.Encode("").empty());
  EXPECT_EQ(tok.Decode(Ids{}), "");
  // Invalid UTF-8 is encoded as if each bad subpart were U+FFFD.
  EXPECT_EQ(tok.Encode("a\xFF" "b"), tok.Encode("a\xEF\xBF\xBD" "b"));
  EXPECT_EQ(tok.Encode("\xE4\xBD"), tok.Encode("\xEF\xBF\xBD"));
}

// decode(encode(s)) == NFC(s) for any valid UTF-8, including whitespace of
// every kind, combining marks, emoji and added tokens.
TEST(Tokenizer, RoundTripRandomUnicode) {
  const Tokenizer& tok = RealTokenizer();
  const char32_t pool[] = {'a', 'b', 'Z', ' ', ' ', '\n', '\r', '\t', '\'', 's', 'l', '1', '9', '.',
                           '<', '|', '>', 0xA0, 0x85, 0x3000, 0x2028, 0x180E, 0x200B, 0xFEFF, 0xE9,
                           0x0301, 0x0323, 0x212B, 0x1100, 0x1161, 0x4F60, 0x597D, 0x3042, 0x30AB,
                           0x3099, 0xAC00, 0x0410, 0x05D0, 0x0627, 0x0915, 0x094D, 0x1F600, 0x1F3FD,
                           0x200D, 0xFE0F, 0x10FFFF, 0xFFFD, 0x7F, 0x01, 0x0};
  std::mt19937 rng(42);
  for (int n = 0; n < 3000; ++n) {
    std::string s;
    int len = static_cast<int>(rng() % 30);
    for (int i = 0; i < len; ++i) {
      if (rng() % 25 == 0) {
        s += (rng() % 2) ? "<|im_end|>" : "<think>";
      } else {
        utf8::Append(pool[rng() % (sizeof(pool) / sizeof(pool[0]))], &s);
      }
    }
    std::string scratch;
    std::string want(NormalizeNfc(s, &scratch));
    ASSERT_EQ(tok.Decode(tok.Encode(s)), want) << Quote(s);
  }
}

// Random bytes (mostly invalid UTF-8): encoding sees the lossy text.
TEST(Tokenizer, RoundTripRandomBytes) {
  const Tokenizer& tok = RealTokenizer();
  std::mt19937 rng(43);
  for (int n = 0; n < 3000; ++n) {
    std::string s(rng() % 24, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    std::string scratch;
    std::string lossy = utf8::DecodeLossy(s);
    std::string want(NormalizeNfc(lossy, &scratch));
    ASSERT_EQ(tok.Decode(tok.Encode(s)), want) << ::testing::PrintToString(s);
  }
}

TEST(Tokenizer, ConcurrentEncodeIsSafe) {
  const Tokenizer& tok = RealTokenizer();
  std::vector<std::string> texts = {
      "The quick brown fox jumps over the lazy dog.",
      "def f(x):\n    return x**2  # square\n",
      "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C\xEF\xBC\x81",
      "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
      std::string(3000, 'a') + " caf\x65\xCC\x81 \xF0\x9F\x98\x80"};
  std::vector<Ids> want;
  for (const auto& t : texts) want.push_back(tok.Encode(t));
  tok.ClearCache();
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 100; ++round) {
        size_t k = static_cast<size_t>(round + t) % texts.size();
        if (tok.Encode(texts[k]) != want[k]) ++bad[t];
        if (round % 17 == 0) tok.ClearCache();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(bad[t], 0) << "thread " << t;
}

}  // namespace
}  // namespace dms
