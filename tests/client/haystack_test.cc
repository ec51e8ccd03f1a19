// Needle prompts: padded to the target length as measured by the tokenizer
// (a stand-in counter here), the fact once at the asked depth, the question
// last.
#include "client/haystack.h"

#include <gtest/gtest.h>

#include <cctype>

namespace dms::client {
namespace {

// A stand-in tokenizer: each run of letters/digits is a token, each other
// non-space character too. The "template" adds 12 tokens.
int64_t FakeTokens(const std::string& s) {
  int64_t n = 0;
  bool in_word = false;
  for (unsigned char c : s) {
    if (std::isalnum(c)) {
      if (!in_word) ++n;
      in_word = true;
    } else {
      in_word = false;
      if (!std::isspace(c)) ++n;
    }
  }
  return n;
}

TokenCounters FakeCounters(int* calls = nullptr) {
  TokenCounters c;
  c.prompt = [calls](const std::string& m) -> StatusOr<int64_t> {
    if (calls) ++*calls;
    return FakeTokens(m) + 12;
  };
  c.text = [](const std::string& t) -> StatusOr<int64_t> { return FakeTokens(t); };
  return c;
}

size_t Count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1)) ++n;
  return n;
}

TEST(HaystackTest, PaddedToTheTargetWithTheFactOnceAndTheQuestionLast) {
  for (int64_t target : {200, 1000, 4096, 20000}) {
    NeedleSpec spec;
    spec.target_tokens = target;
    spec.depth = 0.5;
    auto p = BuildNeedlePrompt(spec, FakeCounters());
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_EQ(p->prompt_tokens, FakeTokens(p->user_message) + 12);
    EXPECT_LE(p->prompt_tokens, target);
    EXPECT_GE(p->prompt_tokens, target - 1) << "padding should reach the target to within a token";
    EXPECT_EQ(Count(p->user_message, kNeedleFact), 1u);
    const std::string tail = std::string("\n\n") + kNeedleQuestion;
    EXPECT_EQ(p->user_message.substr(p->user_message.size() - tail.size()), tail);
  }
}

TEST(HaystackTest, FactSitsAtTheAskedDepth) {
  for (double depth : {0.0, 0.05, 0.5, 0.95, 1.0}) {
    NeedleSpec spec;
    spec.target_tokens = 8000;
    spec.depth = depth;
    auto p = BuildNeedlePrompt(spec, FakeCounters());
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    const std::string filler = p->user_message.substr(0, p->user_message.rfind("\n\n"));
    const double at = static_cast<double>(filler.find(kNeedleFact)) / filler.size();
    EXPECT_NEAR(at, depth, 0.02) << "depth " << depth;
    EXPECT_NEAR(p->depth, depth, 0.02);
  }
}

TEST(HaystackTest, SeededFillerAndFewMeasurements) {
  NeedleSpec spec;
  spec.target_tokens = 4000;
  int calls = 0;
  auto a = BuildNeedlePrompt(spec, FakeCounters(&calls));
  auto b = BuildNeedlePrompt(spec, FakeCounters());
  spec.seed = 1;
  auto c = BuildNeedlePrompt(spec, FakeCounters());
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->user_message, b->user_message);
  EXPECT_NE(a->user_message, c->user_message);
  // The whole prompt is measured a handful of times, not once per sentence.
  EXPECT_LE(calls, 10);
}

TEST(HaystackTest, FillerNeverGivesTheAnswerAway) {
  for (const std::string& s : FillerSentences(3, 200)) {
    EXPECT_EQ(s.find("Freedonia"), std::string::npos) << s;
    EXPECT_EQ(s.find("Silverton"), std::string::npos) << s;
    EXPECT_EQ(s.find("capital"), std::string::npos) << s;
  }
}

TEST(HaystackTest, Errors) {
  NeedleSpec spec;
  spec.target_tokens = 20;
  // Fact 7 tokens + question 20 (17 words, 3 marks) + template 12 = 39.
  EXPECT_EQ(BuildNeedlePrompt(spec, FakeCounters()).status().message(),
            "needle prompt: the fact and question alone take 39 tokens, more than the 20 asked");
  spec.target_tokens = 1000;
  spec.depth = 1.5;
  EXPECT_EQ(BuildNeedlePrompt(spec, FakeCounters()).status().message(),
            "needle depth: expected a fraction in [0, 1], found 1.5");
  spec.depth = 0.5;
  TokenCounters broken = FakeCounters();
  broken.prompt = [](const std::string&) -> StatusOr<int64_t> {
    return FailedPreconditionError("Tokenize: FAILED_PRECONDITION: no tokenizer");
  };
  EXPECT_EQ(BuildNeedlePrompt(spec, broken).status().message(), "Tokenize: FAILED_PRECONDITION: no tokenizer");
}

TEST(HaystackTest, AssembleOrder) {
  EXPECT_EQ(AssembleNeedleMessage({"A.", "B."}, 1),
            std::string("A. ") + kNeedleFact + " B.\n\n" + kNeedleQuestion);
  EXPECT_EQ(AssembleNeedleMessage({"A."}, 0), std::string(kNeedleFact) + " A.\n\n" + kNeedleQuestion);
  EXPECT_EQ(AssembleNeedleMessage({"A."}, 1), std::string("A. ") + kNeedleFact + "\n\n" + kNeedleQuestion);
}

}  // namespace
}  // namespace dms::client
