// Benchmark datasets and flag parsing: lengths in range, determinism, and the
// exact one-line errors for bad input.
#include "client/dataset.h"

#include <gtest/gtest.h>

#include "client/bench_summary.h"
#include "client/client_util.h"
#include "tests/test_util.h"

namespace dms::client {
namespace {

TEST(RandomDatasetTest, LengthsInRangeAndIdsBelowTheLimit) {
  RandomDatasetOptions o;
  o.input_len = {16, 48};
  o.output_len = {4, 9};
  o.vocab_size = 256;
  o.seed = 5;
  o.count = 500;
  auto prompts = MakeRandomPrompts(o);
  ASSERT_TRUE(prompts.ok()) << prompts.status().ToString();
  ASSERT_EQ(prompts->size(), 500u);
  int64_t min_in = 1 << 30, max_in = 0, min_out = 1 << 30, max_out = 0;
  for (const BenchPrompt& p : *prompts) {
    EXPECT_EQ(p.kind, BenchPrompt::Kind::kTokenIds);
    EXPECT_EQ(p.input_tokens, static_cast<int64_t>(p.token_ids.size()));
    min_in = std::min<int64_t>(min_in, p.token_ids.size());
    max_in = std::max<int64_t>(max_in, p.token_ids.size());
    min_out = std::min<int64_t>(min_out, p.max_tokens);
    max_out = std::max<int64_t>(max_out, p.max_tokens);
    for (int32_t id : p.token_ids) {
      EXPECT_GE(id, 0);
      EXPECT_LT(id, 256);
    }
  }
  // 500 uniform draws reach both ends of these small ranges.
  EXPECT_EQ(min_in, 16);
  EXPECT_EQ(max_in, 48);
  EXPECT_EQ(min_out, 4);
  EXPECT_EQ(max_out, 9);
}

TEST(RandomDatasetTest, DeterministicAndNoSpecialTokens) {
  RandomDatasetOptions o;
  o.vocab_size = 151936;  // Qwen3: ids >= 151643 are special
  o.count = 50;
  o.seed = 9;
  auto a = MakeRandomPrompts(o), b = MakeRandomPrompts(o);
  ASSERT_TRUE(a.ok() && b.ok());
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ((*a)[i].token_ids, (*b)[i].token_ids);
    for (int32_t id : (*a)[i].token_ids) EXPECT_LT(id, 151643);
  }
  o.seed = 10;
  auto c = MakeRandomPrompts(o);
  EXPECT_NE((*a)[0].token_ids, (*c)[0].token_ids);
}

TEST(RandomDatasetTest, Errors) {
  RandomDatasetOptions o;
  o.vocab_size = 100;
  o.input_len = {0, 4};
  EXPECT_EQ(MakeRandomPrompts(o).status().message(), "--input-len: prompts need at least 1 token");
  o.input_len = {4, 4};
  o.output_len = {0, 0};
  EXPECT_EQ(MakeRandomPrompts(o).status().message(), "--output-len: requests need at least 1 output token");
}

TEST(JsonlDatasetTest, PromptsIdsAndChats) {
  const std::string text =
      "{\"prompt\": \"Hello\", \"max_tokens\": 7}\n"
      "\n"
      "{\"prompt_token_ids\": [1, 2, 3]}\n"
      "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\"}],"
      " \"enable_thinking\": false}\n";
  auto prompts = ParseJsonlPrompts(text, "p.jsonl", IntRange{32, 32}, 0);
  ASSERT_TRUE(prompts.ok()) << prompts.status().ToString();
  ASSERT_EQ(prompts->size(), 3u);
  EXPECT_EQ((*prompts)[0].kind, BenchPrompt::Kind::kText);
  EXPECT_EQ((*prompts)[0].text, "Hello");
  EXPECT_EQ((*prompts)[0].max_tokens, 7u);
  EXPECT_EQ((*prompts)[1].kind, BenchPrompt::Kind::kTokenIds);
  EXPECT_EQ((*prompts)[1].token_ids, (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ((*prompts)[1].max_tokens, 32u);
  EXPECT_EQ((*prompts)[2].kind, BenchPrompt::Kind::kChat);
  ASSERT_EQ((*prompts)[2].chat.size(), 2u);
  EXPECT_EQ((*prompts)[2].chat[1].second, "Hi");
  EXPECT_EQ((*prompts)[2].enable_thinking, false);

  dms::v1::ChatRequest chat;
  ToChatRequest((*prompts)[2], &chat);
  EXPECT_EQ(chat.messages_size(), 2);
  EXPECT_FALSE(chat.enable_thinking());
  EXPECT_EQ(chat.max_tokens(), 32u);
  dms::v1::GenerateRequest gen;
  ToGenerateRequest((*prompts)[1], &gen);
  EXPECT_EQ(gen.prompt_token_ids_size(), 3);
  EXPECT_TRUE(gen.prompt().empty());
}

TEST(JsonlDatasetTest, ErrorsNameFileAndLine) {
  auto err = [](const std::string& text) {
    return ParseJsonlPrompts(text, "p.jsonl", IntRange{8, 8}, 0).status().message();
  };
  EXPECT_EQ(err("{\"prompt\": \"a\"}\nnot json\n"), "p.jsonl:2: not valid JSON");
  EXPECT_EQ(err("[1, 2]\n"), "p.jsonl:1: expected a JSON object");
  EXPECT_EQ(err("{\"text\": \"a\"}\n"),
            "p.jsonl:1: expected exactly one of \"prompt\", \"prompt_token_ids\" or \"messages\"");
  EXPECT_EQ(err("{\"prompt\": \"a\", \"messages\": []}\n"),
            "p.jsonl:1: expected exactly one of \"prompt\", \"prompt_token_ids\" or \"messages\"");
  EXPECT_EQ(err("{\"prompt\": \"\"}\n"), "p.jsonl:1: \"prompt\" must be a non-empty string");
  EXPECT_EQ(err("{\"prompt_token_ids\": [1, \"x\"]}\n"),
            "p.jsonl:1: \"prompt_token_ids\" must be a non-empty array of integers");
  EXPECT_EQ(err("{\"messages\": [{\"role\": \"bot\", \"content\": \"x\"}]}\n"),
            "p.jsonl:1: messages[0].role must be system, user or assistant, found 'bot'");
  EXPECT_EQ(err("{\"messages\": [{\"role\": \"user\"}]}\n"),
            "p.jsonl:1: messages[0] must be {\"role\": string, \"content\": string}");
  EXPECT_EQ(err("{\"prompt\": \"a\", \"max_tokens\": 0}\n"), "p.jsonl:1: \"max_tokens\" must be a positive integer");
  EXPECT_EQ(err("\n\n"), "p.jsonl: no prompts (expected one JSON object per line)");
  // Nesting beyond kJsonMaxDepth, refused before the line is parsed.
  EXPECT_EQ(err("{\"prompt\": \"a\"}\n{\"messages\": " + testing::DeeplyNestedJson(100000) + "}\n"),
            "p.jsonl:2: JSON is nested deeper than 64 levels");
  EXPECT_EQ(LoadJsonlPrompts("/nonexistent/p.jsonl", IntRange{8, 8}, 0).status().message(),
            "--dataset-path: cannot read '/nonexistent/p.jsonl': No such file or directory");
}

TEST(FlagParsingTest, RangesCountsAndLists) {
  auto r = ParseRange("64:256", "--input-len");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->lo, 64);
  EXPECT_EQ(r->hi, 256);
  r = ParseRange("128", "--input-len");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->lo, 128);
  EXPECT_EQ(r->hi, 128);
  EXPECT_EQ(ParseRange("9:3", "--input-len").status().message(),
            "--input-len: expected N or LO:HI with 0 <= LO <= HI, found '9:3'");
  EXPECT_EQ(ParseRange("abc", "--output-len").status().message(),
            "--output-len: expected N or LO:HI with 0 <= LO <= HI, found 'abc'");
  EXPECT_EQ(*ParseTokenCount("4K", "--lengths"), 4096);
  EXPECT_EQ(*ParseTokenCount("32k", "--lengths"), 32768);
  EXPECT_EQ(*ParseTokenCount("300", "--lengths"), 300);
  EXPECT_EQ(ParseTokenCount("4M", "--lengths").status().message(),
            "--lengths: '4M' is not a positive token count (e.g. 512 or 4K)");
  auto ints = ParseIntList("1,2, 4", "--concurrency");
  ASSERT_TRUE(ints.ok());
  EXPECT_EQ(*ints, (std::vector<int32_t>{1, 2, 4}));
  EXPECT_EQ(ParseIntList("1,,2", "--concurrency").status().message(), "--concurrency: empty item in '1,,2'");
  EXPECT_EQ(ParseIntList("1,x", "--concurrency").status().message(), "--concurrency: 'x' is not an integer");
  auto rates = ParseDoubleList("0.5,2,inf", "--request-rate", true);
  ASSERT_TRUE(rates.ok());
  EXPECT_TRUE(std::isinf((*rates)[2]));
  EXPECT_EQ(ParseDoubleList("fast", "--request-rate", true).status().message(),
            "--request-rate: 'fast' is not a number (or inf)");
}

TEST(FlagParsingTest, Goodput) {
  auto slo = ParseGoodput("ttft=0.5,tpot=0.05");
  ASSERT_TRUE(slo.ok());
  EXPECT_DOUBLE_EQ(slo->ttft_s, 0.5);
  EXPECT_DOUBLE_EQ(slo->tpot_s, 0.05);
  EXPECT_TRUE(std::isnan(slo->e2e_s));
  EXPECT_EQ(slo->Describe(), "ttft<=0.5s, tpot<=0.05s");
  EXPECT_EQ(ParseGoodput("itl=1").status().message(), "--goodput: unknown metric 'itl' (expected ttft, tpot or e2e)");
  EXPECT_EQ(ParseGoodput("ttft=-1").status().message(),
            "--goodput: ttft must be a positive number of seconds, found '-1'");
  EXPECT_EQ(ParseGoodput("ttft").status().message(),
            "--goodput: expected METRIC=SECONDS items like ttft=0.5,tpot=0.05, found 'ttft'");
}

}  // namespace
}  // namespace dms::client
