// The pre-tokenizer split: Oniguruma-to-PCRE2 translation and the pieces of
// the Qwen2 regex (as Hugging Face's Split(Isolated) produces them).
#include "engine/tokenizer/split_regex.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "engine/tokenizer/utf8.h"

namespace dms {
namespace {

// The pattern of Qwen2/Qwen3's tokenizer.json.
const char kQwenPattern[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const char kWs[] =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}";

std::vector<std::string> Pieces(const std::string& text) {
  static auto regex = SplitRegex::Compile(kQwenPattern);
  EXPECT_TRUE(regex.ok()) << regex.status().ToString();
  SplitRegex::Scratch scratch;
  std::vector<SplitRegex::Piece> pieces;
  (*regex)->Split(text, &scratch, &pieces);
  std::vector<std::string> out;
  for (auto p : pieces) out.push_back(text.substr(p.begin, p.end - p.begin));
  return out;
}

using V = std::vector<std::string>;

TEST(SplitRegex, TranslatesWhitespaceEscapes) {
  EXPECT_EQ(*TranslateOnigPattern("\\s+(?!\\S)"),
            std::string("[") + kWs + "]+(?![^" + kWs + "])");
  EXPECT_EQ(*TranslateOnigPattern("[^\\s\\p{L}]"), std::string("[^") + kWs + "\\p{L}]");
  EXPECT_EQ(*TranslateOnigPattern("a\\\\s"), "a\\\\s");  // an escaped backslash, then 's'
  auto bad = TranslateOnigPattern("[\\S]");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "split regex: \\S inside a character class is not supported");
}

TEST(SplitRegex, CompileErrorNamesOffset) {
  auto r = SplitRegex::Compile("(abc");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "split regex does not compile at offset 4: missing closing parenthesis");
}

TEST(SplitRegex, CapturingGroupsAndGaps) {
  // Capturing groups do not matter; text no alternative matches is a piece.
  auto regex = SplitRegex::Compile("(\\p{L}+)|(\\d)(\\d)");
  ASSERT_TRUE(regex.ok()) << regex.status().ToString();
  SplitRegex::Scratch scratch;
  std::vector<SplitRegex::Piece> pieces;
  std::string text = "ab, 123cd!";
  (*regex)->Split(text, &scratch, &pieces);
  std::vector<std::string> got;
  for (auto p : pieces) got.push_back(text.substr(p.begin, p.end - p.begin));
  EXPECT_EQ(got, (V{"ab", ", ", "12", "3", "cd", "!"}));
}

TEST(SplitRegex, QwenPieces) {
  EXPECT_EQ(Pieces("Hello, world!"), (V{"Hello", ",", " world", "!"}));
  EXPECT_EQ(Pieces("I'm DON'T"), (V{"I", "'m", " DON", "'T"}));
  EXPECT_EQ(Pieces("12345"), (V{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(Pieces("  leading"), (V{" ", " leading"}));
  EXPECT_EQ(Pieces("trailing   "), (V{"trailing", "   "}));
  EXPECT_EQ(Pieces("a\n\nb"), (V{"a", "\n\n", "b"}));
  EXPECT_EQ(Pieces("x  \n y"), (V{"x", "  \n", " y"}));
  EXPECT_EQ(Pieces("f(x):\n    return"), (V{"f", "(x", "):\n", "   ", " return"}));
  EXPECT_EQ(Pieces("\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C"), (V{"\xE4\xBD\xA0\xE5\xA5\xBD", "\xEF\xBC\x8C"}));
  EXPECT_EQ(Pieces(""), V{});
}

// Oniguruma's \s is Unicode White_Space: U+0085 is a space, U+180E (a
// format character since Unicode 6.3) is not, although PCRE2's own \s
// would take it. "a" + two of them + "b" tells the two apart.
TEST(SplitRegex, WhiteSpaceIsOnigurumas) {
  EXPECT_EQ(Pieces("a\xC2\x85\xC2\x85" "b"), (V{"a", "\xC2\x85", "\xC2\x85" "b"}));
  EXPECT_EQ(Pieces("a\xE1\xA0\x8E\xE1\xA0\x8E" "b"), (V{"a", "\xE1\xA0\x8E\xE1\xA0\x8E", "b"}));
  EXPECT_EQ(Pieces("a\xE3\x80\x80\xE3\x80\x80" "b"), (V{"a", "\xE3\x80\x80", "\xE3\x80\x80" "b"}));
  // Punctuation runs ([^\s\p{L}\p{N}]+) take U+180E but stop at U+0085.
  EXPECT_EQ(Pieces("!\xE1\xA0\x8E"), (V{"!\xE1\xA0\x8E"}));
  EXPECT_EQ(Pieces("!\xC2\x85"), (V{"!", "\xC2\x85"}));
}

// Pieces tile the text exactly, for random text and for very long runs
// (which must neither crash nor overflow the JIT stack).
TEST(SplitRegex, PiecesCoverText) {
  const char32_t pool[] = {'a', 'Z', '7', ' ', '\n', '\r', '\t', '\'', 's', '.', '!', 0xA0,
                           0x3000, 0x4F60, 0xE9, 0x0301, 0x1F600, 0x0660, 0x200B};
  std::mt19937 rng(3);
  for (int n = 0; n < 3000; ++n) {
    std::string s;
    int len = static_cast<int>(rng() % 40);
    for (int i = 0; i < len; ++i) utf8::Append(pool[rng() % (sizeof(pool) / sizeof(pool[0]))], &s);
    std::string joined;
    for (const std::string& p : Pieces(s)) {
      EXPECT_FALSE(p.empty());
      joined += p;
    }
    ASSERT_EQ(joined, s);
  }
  for (std::string run : {std::string(200000, ' '), std::string(200000, 'a'),
                          std::string(100000, '\n') + "x", std::string(100000, '!')}) {
    std::string joined;
    for (const std::string& p : Pieces(run + "b")) joined += p;
    EXPECT_EQ(joined, run + "b");
  }
}

}  // namespace
}  // namespace dms
