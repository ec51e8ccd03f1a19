// Exactness against Hugging Face: every golden case (ids and decoded text
// from `tokenizers`, chat text from transformers' apply_chat_template) must
// match. The project's own corpus (tests/data/tokenizer) is required; the
// outside acceptance fixtures (../shared/fixtures) are checked when present.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/tokenizer/chat_request.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/incremental_detokenizer.h"
#include "tests/tokenizer/tokenizer_test_util.h"

namespace dms {
namespace {

using testing::Quote;
using testing::ReadJsonLines;
using testing::RealTokenizer;

// Checks each {"text", "ids", "decoded"} row; returns the number checked.
size_t CheckTokenizerCases(const std::string& path) {
  const Tokenizer& tok = RealTokenizer();
  std::vector<nlohmann::json> rows = ReadJsonLines(path);
  size_t failures = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    const std::string text = rows[i]["text"];
    const std::vector<int32_t> want = rows[i]["ids"];
    const std::string want_decoded = rows[i]["decoded"];
    std::vector<int32_t> ids = tok.Encode(text);
    std::string decoded = tok.Decode(ids);
    // The incremental detokenizer must agree with Decode on every case.
    IncrementalDetokenizer detok(tok);
    std::string streamed;
    for (int32_t id : want) streamed += detok.Add(id);
    streamed += detok.Finish();
    if (ids != want || decoded != want_decoded || streamed != want_decoded) {
      if (++failures <= 5) {
        ADD_FAILURE() << path << " case " << i << " text " << Quote(text) << "\n  want "
                      << ::testing::PrintToString(want) << "\n  got  " << ::testing::PrintToString(ids)
                      << "\n  decoded " << Quote(decoded) << " want " << Quote(want_decoded)
                      << "\n  streamed " << Quote(streamed);
      }
    }
  }
  EXPECT_EQ(failures, 0u) << "of " << rows.size() << " cases in " << path;
  return rows.size();
}

size_t CheckChatCases(const std::string& path) {
  const Tokenizer& tok = RealTokenizer();
  EXPECT_TRUE(CheckChatTemplateSupported(tok.chat_template()).ok());
  std::vector<nlohmann::json> rows = ReadJsonLines(path);
  size_t failures = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    auto request = ParseChatRequest(rows[i]);
    if (!request.ok()) {
      ADD_FAILURE() << path << " case " << i << ": " << request.status().ToString();
      ++failures;
      continue;
    }
    auto text = RenderChatTemplate(request->messages, request->options);
    if (!text.ok()) {
      ADD_FAILURE() << path << " case " << i << ": " << text.status().ToString();
      ++failures;
      continue;
    }
    const std::string want_text = rows[i]["text"];
    const std::vector<int32_t> want_ids = rows[i]["ids"];
    std::vector<int32_t> ids = tok.Encode(*text);
    if (*text != want_text || ids != want_ids) {
      if (++failures <= 5) {
        ADD_FAILURE() << path << " case " << i << " messages " << rows[i]["messages"].dump()
                      << "\n  want " << Quote(want_text) << "\n  got  " << Quote(*text);
      }
    }
  }
  EXPECT_EQ(failures, 0u) << "of " << rows.size() << " cases in " << path;
  return rows.size();
}

TEST(TokenizerGolden, ProjectTokenizerCases) {
  size_t n = CheckTokenizerCases(testing::TestDataDir() + "/tokenizer/tokenizer_cases.jsonl");
  EXPECT_GE(n, 100u) << "the project's golden tokenizer corpus is missing or too small";
}

TEST(TokenizerGolden, ProjectChatCases) {
  size_t n = CheckChatCases(testing::TestDataDir() + "/tokenizer/chat_cases.jsonl");
  EXPECT_GE(n, 10u) << "the project's golden chat corpus is missing or too small";
}

TEST(TokenizerGolden, SharedTokenizerCases) {
  std::string dir = testing::SharedFixturesDir();
  if (dir.empty()) GTEST_SKIP() << "no ../shared/fixtures";
  EXPECT_GT(CheckTokenizerCases(dir + "/tokenizer_cases.jsonl"), 0u);
}

TEST(TokenizerGolden, SharedChatCases) {
  std::string dir = testing::SharedFixturesDir();
  if (dir.empty()) GTEST_SKIP() << "no ../shared/fixtures";
  EXPECT_GT(CheckChatCases(dir + "/chat_cases.jsonl"), 0u);
}

// Hugging Face's decoded text (the NFC form of the input) encodes back to
// the same ids: encoding is stable under its own normalization.
TEST(TokenizerGolden, DecodedTextReencodesToSameIds) {
  const Tokenizer& tok = RealTokenizer();
  auto rows = ReadJsonLines(testing::TestDataDir() + "/tokenizer/tokenizer_cases.jsonl");
  ASSERT_FALSE(rows.empty());
  for (const auto& row : rows) {
    const std::vector<int32_t> ids = row["ids"];
    const std::string decoded = row["decoded"];
    EXPECT_EQ(tok.Encode(decoded), ids) << Quote(decoded);
  }
}

}  // namespace
}  // namespace dms
