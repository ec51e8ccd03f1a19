// Needle prompts: padded to the target length as measured by the tokenizer
// (a stand-in counter here), the fact once at the asked depth, the question
// last (its own user message in the split layout).
#include "client/haystack.h"

#include <gtest/gtest.h>

#include <cctype>

namespace dms::client {
namespace {

// A stand-in tokenizer: each run of letters/digits is a token, each other
// non-space character too. The "template" adds 12 tokens, and 5 for each
// further user message.
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
  c.prompt = [calls](const std::vector<std::string>& messages) -> StatusOr<int64_t> {
    if (calls) ++*calls;
    int64_t n = 12 + 5 * (static_cast<int64_t>(messages.size()) - 1);
    for (const std::string& m : messages) n += FakeTokens(m);
    return n;
  };
  c.text = [](const std::string& t) -> StatusOr<int64_t> { return FakeTokens(t); };
  return c;
}

// The whole prompt's user text, messages joined by a blank line.
std::string Joined(const NeedlePrompt& p) {
  std::string out;
  for (const std::string& m : p.user_messages) out += (out.empty() ? "" : "\n\n") + m;
  return out;
}

size_t Count(const std::string& hay, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1)) ++n;
  return n;
}

TEST(HaystackTest, PaddedToTheTargetWithTheFactOnceAndTheQuestionLast) {
  for (NeedleLayout layout : {NeedleLayout::kSplit, NeedleLayout::kSingle}) {
    for (int64_t target : {200, 1000, 4096, 20000}) {
      NeedleSpec spec;
      spec.target_tokens = target;
      spec.depth = 0.5;
      spec.layout = layout;
      auto p = BuildNeedlePrompt(spec, FakeCounters());
      ASSERT_TRUE(p.ok()) << p.status().ToString();
      const bool split = layout == NeedleLayout::kSplit;
      ASSERT_EQ(p->user_messages.size(), split ? 2u : 1u);
      EXPECT_EQ(p->prompt_tokens, FakeTokens(Joined(*p)) + 12 + (split ? 5 : 0));
      EXPECT_LE(p->prompt_tokens, target);
      EXPECT_GE(p->prompt_tokens, target - 1) << "padding should reach the target to within a token";
      EXPECT_EQ(Count(Joined(*p), kNeedleFact), 1u);
      EXPECT_EQ(Count(p->user_messages[0], kNeedleFact), 1u) << "the fact is in the document";
      const std::string tail = std::string("\n\n") + kNeedleQuestion;
      EXPECT_EQ(Joined(*p).substr(Joined(*p).size() - tail.size()), tail);
      // Split: the question alone is the last user message (the server's
      // protected tail), so a KV policy may prune all of the document.
      if (split) {
        EXPECT_EQ(p->user_messages[1], kNeedleQuestion);
      }
    }
  }
}

TEST(HaystackTest, FactSitsAtTheAskedDepth) {
  for (double depth : {0.0, 0.05, 0.5, 0.95, 1.0}) {
    NeedleSpec spec;
    spec.target_tokens = 8000;
    spec.depth = depth;
    auto p = BuildNeedlePrompt(spec, FakeCounters());
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    const std::string filler = p->user_messages[0];
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
  EXPECT_EQ(a->user_messages, b->user_messages);
  EXPECT_NE(a->user_messages, c->user_messages);
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
  // Fact 7 tokens + question 20 (17 words, 3 marks) + template 12 + second
  // message 5 = 44 (39 as one message).
  EXPECT_EQ(BuildNeedlePrompt(spec, FakeCounters()).status().message(),
            "needle prompt: the fact and question alone take 44 tokens, more than the 20 asked");
  spec.layout = NeedleLayout::kSingle;
  EXPECT_EQ(BuildNeedlePrompt(spec, FakeCounters()).status().message(),
            "needle prompt: the fact and question alone take 39 tokens, more than the 20 asked");
  spec.layout = NeedleLayout::kSplit;
  spec.target_tokens = 1000;
  spec.depth = 1.5;
  EXPECT_EQ(BuildNeedlePrompt(spec, FakeCounters()).status().message(),
            "needle depth: expected a fraction in [0, 1], found 1.5");
  spec.depth = 0.5;
  TokenCounters broken = FakeCounters();
  broken.prompt = [](const std::vector<std::string>&) -> StatusOr<int64_t> {
    return FailedPreconditionError("Tokenize: FAILED_PRECONDITION: no tokenizer");
  };
  EXPECT_EQ(BuildNeedlePrompt(spec, broken).status().message(), "Tokenize: FAILED_PRECONDITION: no tokenizer");
}

TEST(HaystackTest, AssembleOrder) {
  using V = std::vector<std::string>;
  const NeedleLayout single = NeedleLayout::kSingle, split = NeedleLayout::kSplit;
  EXPECT_EQ(AssembleNeedleMessages({"A.", "B."}, 1, single),
            V{std::string("A. ") + kNeedleFact + " B.\n\n" + kNeedleQuestion});
  EXPECT_EQ(AssembleNeedleMessages({"A."}, 0, single), V{std::string(kNeedleFact) + " A.\n\n" + kNeedleQuestion});
  EXPECT_EQ(AssembleNeedleMessages({"A."}, 1, single), V{std::string("A. ") + kNeedleFact + "\n\n" + kNeedleQuestion});
  EXPECT_EQ(AssembleNeedleMessages({"A.", "B."}, 1, split), (V{std::string("A. ") + kNeedleFact + " B.", kNeedleQuestion}));
}

TEST(HaystackTest, LayoutNames) {
  EXPECT_EQ(*ParseNeedleLayout("split"), NeedleLayout::kSplit);
  EXPECT_EQ(*ParseNeedleLayout("single"), NeedleLayout::kSingle);
  EXPECT_STREQ(NeedleLayoutName(NeedleLayout::kSplit), "split");
  EXPECT_STREQ(NeedleLayoutName(NeedleLayout::kSingle), "single");
  EXPECT_EQ(ParseNeedleLayout("both").status().message(), "--layout: expected split or single, found 'both'");
}

}  // namespace
}  // namespace dms::client
