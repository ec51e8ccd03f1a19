// End to end through build/bin/dms-engine: `tokenize` and `chat-template`
// read JSON lines on stdin and write JSON lines on stdout; bad input gives
// one error line naming the line number and a non-zero exit.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/tokenizer/tokenizer_test_util.h"

namespace dms {
namespace {

using nlohmann::json;
using testing::RunCommand;

std::string Engine(const std::string& args) {
  std::string cmd(1, '\'');  // (built up step by step: GCC 12 warns on "'" + string)
  cmd += testing::BinDir();
  cmd += "/dms-engine' ";
  cmd += args;
  return cmd;
}

std::vector<json> OutputLines(const std::string& out) {
  std::vector<json> rows;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) rows.push_back(json::parse(line));
  return rows;
}

TEST(TokenizerCli, TokenizeMatchesGoldenCorpus) {
  auto rows = testing::ReadJsonLines(testing::TestDataDir() + "/tokenizer/tokenizer_cases.jsonl");
  ASSERT_FALSE(rows.empty());
  std::string input;
  for (const auto& r : rows) input += json{{"text", r["text"]}}.dump() + "\n";
  auto res = RunCommand(Engine("tokenize --tokenizer '" + testing::TokenizerDir() + "'"), input);
  ASSERT_EQ(res.exit_code, 0) << res.err;
  EXPECT_EQ(res.err, "");
  std::vector<json> out = OutputLines(res.out);
  ASSERT_EQ(out.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(out[i]["ids"], rows[i]["ids"]) << "case " << i;
    EXPECT_EQ(out[i]["decoded"], rows[i]["decoded"]) << "case " << i;
  }
}

TEST(TokenizerCli, TokenizeOutputShape) {
  // A tokenizer.json path works as well as its directory.
  auto res = RunCommand(Engine("tokenize --tokenizer '" + testing::TokenizerDir() + "/tokenizer.json'"),
                        "{\"text\": \"Hello, world!\"}\n\n{\"text\": \"a<|im_end|>\"}\n");
  ASSERT_EQ(res.exit_code, 0) << res.err;
  EXPECT_EQ(res.out,
            "{\"ids\":[9707,11,1879,0],\"decoded\":\"Hello, world!\"}\n"
            "{\"ids\":[64,151645],\"decoded\":\"a<|im_end|>\"}\n");
}

TEST(TokenizerCli, ChatTemplateMatchesGoldenCorpus) {
  auto rows = testing::ReadJsonLines(testing::TestDataDir() + "/tokenizer/chat_cases.jsonl");
  ASSERT_FALSE(rows.empty());
  std::string input;
  for (const auto& r : rows) {
    input += json{{"messages", r["messages"]},
                  {"enable_thinking", r["enable_thinking"]},
                  {"add_generation_prompt", r["add_generation_prompt"]}}
                 .dump() +
             "\n";
  }
  auto res = RunCommand(Engine("chat-template --tokenizer '" + testing::TokenizerDir() + "'"), input);
  ASSERT_EQ(res.exit_code, 0) << res.err;
  std::vector<json> out = OutputLines(res.out);
  ASSERT_EQ(out.size(), rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    EXPECT_EQ(out[i]["text"], rows[i]["text"]) << "case " << i;
    EXPECT_EQ(out[i]["ids"], rows[i]["ids"]) << "case " << i;
  }
}

TEST(TokenizerCli, ChatTemplateDefaultsAndShape) {
  auto res = RunCommand(Engine("chat-template --tokenizer '" + testing::TokenizerDir() + "'"),
                        "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n");
  ASSERT_EQ(res.exit_code, 0) << res.err;
  EXPECT_EQ(res.out,
            "{\"text\":\"<|im_start|>user\\nHi<|im_end|>\\n<|im_start|>assistant\\n\","
            "\"ids\":[151644,872,198,13048,151645,198,151644,77091,198]}\n");
}

TEST(TokenizerCli, BadLinesNameTheLineNumber) {
  const std::string tok = "--tokenizer '" + testing::TokenizerDir() + "'";
  auto r1 = RunCommand(Engine("tokenize " + tok), "{\"text\": \"ok\"}\n{\"txt\": 1}\n{\"text\": \"x\"}\n");
  EXPECT_EQ(r1.exit_code, 1);
  EXPECT_EQ(r1.out, "{\"ids\":[562],\"decoded\":\"ok\"}\n");  // lines before the bad one
  EXPECT_EQ(r1.err, "dms-engine: line 2: \"text\": expected a string\n");

  auto r2 = RunCommand(Engine("tokenize " + tok), "not json\n");
  EXPECT_EQ(r2.exit_code, 1);
  EXPECT_EQ(r2.err.rfind("dms-engine: line 1: invalid JSON: ", 0), 0u) << r2.err;
  EXPECT_EQ(std::count(r2.err.begin(), r2.err.end(), '\n'), 1);

  auto r3 = RunCommand(Engine("chat-template " + tok),
                       "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}]}\n"
                       "{\"messages\": [{\"role\": \"tool\", \"content\": \"a\"}]}\n");
  EXPECT_EQ(r3.exit_code, 1);
  EXPECT_EQ(r3.err, "dms-engine: line 2: messages[0].role: 'tool' messages are not supported (no tool calling)\n");

  auto r4 = RunCommand(Engine("chat-template " + tok),
                       "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}], \"tools\": [{}]}\n");
  EXPECT_EQ(r4.exit_code, 1);
  EXPECT_EQ(r4.err, "dms-engine: line 1: tools: tool definitions are not supported\n");
}

// A line nested deeper than kJsonMaxDepth is refused before it is parsed
// (on a small stack, where recursion over it would crash).
TEST(TokenizerCli, DeeplyNestedLinesAreRefused) {
  const std::string tok = "--tokenizer '" + testing::TokenizerDir() + "'";
  const std::string deep = testing::DeeplyNestedJson(100000);
  for (const char* command : {"tokenize ", "chat-template "}) {
    auto r = RunCommand("ulimit -s 1024; " + Engine(command + tok),
                        "{\"messages\": " + deep + ", \"text\": " + deep + "}\n");
    EXPECT_EQ(r.exit_code, 1) << command;
    EXPECT_EQ(r.err, "dms-engine: line 1: JSON is nested deeper than 64 levels\n") << command;
  }
}

TEST(TokenizerCli, MissingTokenizer) {
  auto res = RunCommand(Engine("tokenize --tokenizer /nonexistent/tok"), "{\"text\": \"a\"}\n");
  EXPECT_EQ(res.exit_code, 1);
  EXPECT_EQ(res.err, "dms-engine: /nonexistent/tok: no such file\n");
  EXPECT_EQ(res.out, "");
}

TEST(TokenizerCli, OutputIsValidUtf8ForLossyDecodes) {
  // JSON strings are Unicode; text that decodes with U+FFFD still prints.
  auto res = RunCommand(Engine("tokenize --tokenizer '" + testing::TokenizerDir() + "'"),
                        "{\"text\": \"\\ud83d\\ude00 \\u00e9\"}\n");
  ASSERT_EQ(res.exit_code, 0) << res.err;
  auto out = OutputLines(res.out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["decoded"], "\xF0\x9F\x98\x80 \xC3\xA9");
}

}  // namespace
}  // namespace dms
