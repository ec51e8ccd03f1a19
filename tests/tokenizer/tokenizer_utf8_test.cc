// UTF-8 helpers: lossy decoding must replace exactly as Python's
// bytes.decode('utf-8', 'replace') (and Rust's from_utf8_lossy) do.
#include "engine/tokenizer/utf8.h"

#include <gtest/gtest.h>

#include <random>
#include <string>

namespace dms {
namespace {

struct LossyCase {
  std::string in, out;
};

// Expected outputs produced by CPython 3.11: b.decode('utf-8', 'replace').
TEST(Utf8, LossyMatchesPythonReplace) {
  const std::string R = "\xEF\xBF\xBD";
  const LossyCase cases[] = {
      {"\xE0\x80", R + R},                 // E0 needs A0..BF next: two subparts
      {"\xE4\xBD", R},                     // truncated at the end: one
      {"\xE4\xBD" "A", R + "A"},           // interrupted: one, then the ASCII
      {"\xF0\x9F\x98", R},                 // truncated 4-byte sequence
      {"\xED\xA0\x80", R + R + R},         // surrogate: every byte
      {"\xC0\xAF", R + R},                 // overlong lead bytes never start
      {"\xF4\x90\x80\x80", R + R + R + R}, // above U+10FFFF
      {"\xFF", R},
      {"\x80\x80", R + R},
      {"\xF0\x9F\x98\x80", "\xF0\x9F\x98\x80"},
      {"a\xF0\x9F\xE4\xBD\xA0" "b", "a" + R + "\xE4\xBD\xA0" "b"},
      {"\xE1\x80\xE2\xF0\x91\x92\xF1\xBF" "A", R + R + R + R + "A"},
      {"\xF5\x80", R + R},
      {"\xC2", R},
      {R, R},
      {"", ""},
      {"plain ascii", "plain ascii"},
  };
  for (const LossyCase& c : cases) {
    EXPECT_EQ(utf8::DecodeLossy(c.in), c.out) << "input bytes: " << ::testing::PrintToString(c.in);
    EXPECT_TRUE(utf8::IsValid(utf8::DecodeLossy(c.in)));
  }
}

TEST(Utf8, ValidSequences) {
  EXPECT_TRUE(utf8::IsValid("h\xC3\xA9llo \xE4\xBD\xA0 \xF0\x9F\x98\x80"));
  EXPECT_FALSE(utf8::IsValid("\xC3"));
  EXPECT_FALSE(utf8::IsValid("\xED\xA0\x80"));
  std::string s = "\xE4\xBD\xA0";
  EXPECT_EQ(utf8::ValidSequenceLength(s, 0), 3u);
  size_t len;
  EXPECT_EQ(utf8::DecodeAt(s, 0, &len), U'\x4F60');
  EXPECT_EQ(len, 3u);
}

TEST(Utf8, IncompletePrefixOnlyAtTheEnd) {
  EXPECT_TRUE(utf8::IsIncompletePrefix("\xE4\xBD", 0));
  EXPECT_TRUE(utf8::IsIncompletePrefix("\xF0", 0));
  EXPECT_TRUE(utf8::IsIncompletePrefix("\xF0\x9F\x98", 0));
  EXPECT_FALSE(utf8::IsIncompletePrefix("\xE4\xBD" "A", 0));  // interrupted: final
  EXPECT_FALSE(utf8::IsIncompletePrefix("\xE0\x80", 0));      // cannot be completed
  EXPECT_FALSE(utf8::IsIncompletePrefix("\x80", 0));
  EXPECT_FALSE(utf8::IsIncompletePrefix("\xE4\xBD\xA0", 0));  // complete
}

// An independent reference for random inputs: decode greedily code point by
// code point, checking ranges from the Unicode definition directly.
std::string ReferenceLossy(const std::string& s) {
  std::string out;
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<unsigned>(static_cast<uint8_t>(s[k])); };
  while (i < s.size()) {
    unsigned b = byte(i);
    int need = b < 0x80 ? 0 : (b >= 0xC2 && b <= 0xDF) ? 1 : (b >= 0xE0 && b <= 0xEF) ? 2
             : (b >= 0xF0 && b <= 0xF4) ? 3 : -1;
    if (need < 0) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    size_t j = 1;
    for (; j <= static_cast<size_t>(need) && i + j < s.size(); ++j) {
      unsigned c = byte(i + j);
      unsigned lo = 0x80, hi = 0xBF;
      if (j == 1 && b == 0xE0) lo = 0xA0;
      if (j == 1 && b == 0xED) hi = 0x9F;
      if (j == 1 && b == 0xF0) lo = 0x90;
      if (j == 1 && b == 0xF4) hi = 0x8F;
      if (c < lo || c > hi) break;
    }
    if (j == static_cast<size_t>(need) + 1) {
      out += s.substr(i, j);
    } else {
      out += "\xEF\xBF\xBD";
    }
    i += j;
  }
  return out;
}

TEST(Utf8, RandomBytesMatchReference) {
  std::mt19937 rng(7);
  const uint8_t interesting[] = {0x41, 0x80, 0x9F, 0xA0, 0xBF, 0xC2, 0xDF, 0xE0,
                                 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0x8F, 0x90};
  for (int n = 0; n < 20000; ++n) {
    std::string s(rng() % 12, '\0');
    for (char& c : s) c = static_cast<char>(interesting[rng() % sizeof(interesting)]);
    ASSERT_EQ(utf8::DecodeLossy(s), ReferenceLossy(s)) << ::testing::PrintToString(s);
  }
}

}  // namespace
}  // namespace dms
