// NFC with the inert-code-point fast path must equal utf8proc's NFC of the
// whole string, and must not copy text that is already NFC.
#include "engine/tokenizer/nfc.h"

#include <gtest/gtest.h>
#include <utf8proc.h>

#include <cstdlib>
#include <random>
#include <string>

#include "engine/tokenizer/utf8.h"

namespace dms {
namespace {

std::string WholeStringNfc(const std::string& s) {
  utf8proc_uint8_t* out = nullptr;
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                    static_cast<utf8proc_ssize_t>(s.size()), &out,
                                    static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  EXPECT_GE(n, 0);
  std::string r(reinterpret_cast<char*>(out), n);
  std::free(out);
  return r;
}

std::string Nfc(const std::string& s) {
  std::string scratch;
  return std::string(NormalizeNfc(s, &scratch));
}

TEST(Nfc, ComposesAndReplacesSingletons) {
  EXPECT_EQ(Nfc("cafe\xCC\x81"), "caf\xC3\xA9");              // e + U+0301 -> é
  EXPECT_EQ(Nfc("\xE2\x84\xAB"), "\xC3\x85");                  // U+212B ANGSTROM -> Å
  EXPECT_EQ(Nfc("\xE1\x84\x80\xE1\x85\xA1"), "\xEA\xB0\x80");  // jamo L+V -> 가
  EXPECT_EQ(Nfc("\xEA\xB0\x80\xE1\x86\xA8"), "\xEA\xB0\x81");  // 가 + T -> 각
  // é + U+0323 (dot below, ccc 220): decomposed, reordered (220 < 230),
  // recomposed as ẹ (U+1EB9) + U+0301, for which there is no single code point.
  EXPECT_EQ(Nfc("\xC3\xA9\xCC\xA3"), "\xE1\xBA\xB9\xCC\x81");
  // ê + U+0323 does have one: ệ (U+1EC7).
  EXPECT_EQ(Nfc("\xC3\xAA\xCC\xA3"), "\xE1\xBB\x87");
  // か + U+3099 (combining dakuten) -> が
  EXPECT_EQ(Nfc("\xE3\x81\x8B\xE3\x82\x99"), "\xE3\x81\x8C");
  // A mark at the very start has nothing to compose with.
  EXPECT_EQ(Nfc("\xCC\x81" "a"), "\xCC\x81" "a");
}

TEST(Nfc, AlreadyNormalTextIsNotCopied) {
  std::string scratch = "untouched";
  for (std::string s : {std::string("plain ASCII text\n\t"), std::string("caf\xC3\xA9 \xE4\xBD\xA0\xE5\xA5\xBD"),
                        std::string("\xF0\x9F\x98\x80 emoji"), std::string()}) {
    std::string_view out = NormalizeNfc(s, &scratch);
    EXPECT_EQ(out.data(), s.data()) << s;
    EXPECT_EQ(out, s);
  }
  EXPECT_EQ(scratch, "untouched");
}

TEST(Nfc, InertTable) {
  EXPECT_TRUE(IsNfcInert(U'a'));
  EXPECT_TRUE(IsNfcInert(0xE9));     // é is its own NFC
  EXPECT_TRUE(IsNfcInert(0x4F60));   // 你
  EXPECT_TRUE(IsNfcInert(0xAC00));   // 가 (may compose with a following T, not a preceding char)
  EXPECT_FALSE(IsNfcInert(0x0301));  // combining acute
  EXPECT_FALSE(IsNfcInert(0x1161));  // jamo V composes backwards
  EXPECT_FALSE(IsNfcInert(0x11A8));  // jamo T
  EXPECT_FALSE(IsNfcInert(0x212B));  // singleton decomposition
  EXPECT_FALSE(IsNfcInert(0x3099));  // combining dakuten
  EXPECT_FALSE(IsNfcInert(0x0B3E));  // Oriya vowel sign, ccc 0 but composes
}

// Random strings built from code points that interact under NFC.
TEST(Nfc, RandomMatchesWholeStringUtf8proc) {
  const char32_t pool[] = {
      'a', 'e', 'o', 'A', ' ', 0xE9, 0x0301, 0x0300, 0x0323, 0x0308, 0x0327, 0x212B, 0x2126,
      0x1100, 0x1161, 0x11A8, 0xAC00, 0xAC01, 0x304B, 0x3099, 0x309A, 0x30CF, 0x0B47, 0x0B3E,
      0x0B57, 0x0CC6, 0x0CC2, 0x0CD5, 0x0DD9, 0x0DCF, 0x0DCA, 0x0F71, 0x0F72, 0x0344, 0x0958,
      0xFB2C, 0x05BC, 0x05C1, 0x4F60, 0x1E0B, 0x0307, 0x1B05, 0x1B35, 0x0345, 0x03B1, 0x1F00,
      0xF900, 0x2F800, 0x1D15E, 0x1D165, 0x0061, 0x0315, 0x031B, 0x0334};
  std::mt19937 rng(11);
  for (int n = 0; n < 20000; ++n) {
    std::string s;
    int len = static_cast<int>(rng() % 10);
    for (int i = 0; i < len; ++i) utf8::Append(pool[rng() % (sizeof(pool) / sizeof(pool[0]))], &s);
    ASSERT_EQ(Nfc(s), WholeStringNfc(s)) << ::testing::PrintToString(s);
  }
}

}  // namespace
}  // namespace dms
