#include "common/text_escape.h"

#include <gtest/gtest.h>

namespace dms {
namespace {

TEST(EscapeText, KeepsReadableTextAndEscapesWhatCouldBreakALine) {
  EXPECT_EQ(EscapeText("model.layers.0.q_proj"), "model.layers.0.q_proj");
  EXPECT_EQ(EscapeText("a\nb\r\tc"), "a\\u000ab\\u000d\\u0009c");
  EXPECT_EQ(EscapeText("say \"hi\" \\ bye"), "say \\\"hi\\\" \\\\ bye");
  EXPECT_EQ(EscapeText(std::string("nul\0x", 5)), "nul\\u0000x");
  EXPECT_EQ(EscapeText("\x7f"), "\\u007f");
}

TEST(EscapeText, ValidUtf8StaysInvalidBytesAreEscaped) {
  EXPECT_EQ(EscapeText("rôle 角色 🙂"), "rôle 角色 🙂");
  EXPECT_EQ(EscapeText("\xff\xfe"), "\\u00ff\\u00fe");
  EXPECT_EQ(EscapeText("\xc3"), "\\u00c3");              // truncated sequence
  EXPECT_EQ(EscapeText("\xe0\x80\x80"), "\\u00e0\\u0080\\u0080");  // overlong
  EXPECT_EQ(EscapeText("\xed\xa0\x80"), "\\u00ed\\u00a0\\u0080");  // surrogate
}

TEST(EscapeText, CutsLongText) {
  EXPECT_EQ(EscapeText(std::string(10, 'x'), 4), "xxxx...");
  EXPECT_EQ(EscapeText("abc", 3), "abc");
}

}  // namespace
}  // namespace dms
