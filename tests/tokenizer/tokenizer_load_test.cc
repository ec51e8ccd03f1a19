// Tokenizer::Load on small hand-made tokenizer.json files: what is accepted,
// and the exact one-line error for each kind of bad or unsupported file.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "engine/tokenizer/byte_level.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"
#include "tests/test_util.h"

namespace dms {
namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

// A minimal valid byte-level BPE tokenizer.json in Qwen3's layout: the 256
// byte tokens (id = byte), merges a+b -> "ab" (256), "ab"+"c" -> "abc"
// (257), and two added tokens.
json MinimalTokenizer() {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) {
    std::string ch;
    utf8::Append(ByteLevelMap::Get().CharFor(static_cast<uint8_t>(b)), &ch);
    vocab[ch] = b;
  }
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  return {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 300}, {"content", "<|im_end|>"}, {"special", true}, {"normalized", false}},
        {{"id", 301}, {"content", "<think>"}, {"special", false}, {"normalized", false}}}},
      {"normalizer", {{"type", "NFC"}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", "\\p{L}+|\\s+|[^\\s\\p{L}]+"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}}},
      {"decoder", {{"type", "ByteLevel"}}},
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", json::array({json::array({"a", "b"}), json::array({"ab", "c"})})},
        {"byte_fallback", false}}}};
}

class LoadTest : public ::testing::Test {
 protected:
  // Writes `tokenizer` (and `config` unless null) and loads the directory.
  StatusOr<std::unique_ptr<Tokenizer>> LoadJson(const json& tokenizer, const json& config = json()) {
    testing::WriteFile(file(), tokenizer.dump());
    if (!config.is_null()) testing::WriteFile(dir_.File("tokenizer_config.json"), config.dump());
    return Tokenizer::Load(dir_.path());
  }
  // The error message of loading `tokenizer` (fails the test if it loads).
  std::string ErrorOf(const json& tokenizer) {
    auto r = LoadJson(tokenizer);
    EXPECT_FALSE(r.ok());
    if (r.ok()) return "";
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    return r.status().message();
  }
  std::string file() const { return dir_.File("tokenizer.json"); }

  testing::TempDir dir_;
};

TEST_F(LoadTest, MinimalTokenizerWorks) {
  auto tok = LoadJson(MinimalTokenizer());
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->Encode("abc ab<|im_end|>x<think>"), (Ids{257, ' ', 256, 300, 'x', 301}));
  EXPECT_EQ((*tok)->vocab_size(), 302u);
  EXPECT_EQ((*tok)->eos_id(), 300);  // default eos "<|im_end|>"
  EXPECT_EQ((*tok)->Decode(Ids{257, 300, 301}, true), "abc<think>");
}

TEST_F(LoadTest, FilePathAndConfigBesideIt) {
  json config = {{"eos_token", "<think>"}, {"chat_template", "{{ messages }}"}};
  ASSERT_TRUE(LoadJson(MinimalTokenizer(), config).ok());
  auto tok = Tokenizer::Load(file());  // the file itself, not the directory
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->eos_id(), 301);
  EXPECT_EQ((*tok)->chat_template(), "{{ messages }}");
  // eos_token may also be an AddedToken object.
  json object_eos = {{"eos_token", {{"content", "<|im_end|>"}, {"special", true}}}};
  auto tok2 = LoadJson(MinimalTokenizer(), object_eos);
  ASSERT_TRUE(tok2.ok());
  EXPECT_EQ((*tok2)->eos_id(), 300);
}

TEST_F(LoadTest, OlderStringMergesAreAccepted) {
  json t = MinimalTokenizer();
  t["model"]["merges"] = json::array({"a b", "ab c"});
  auto tok = LoadJson(t);
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->Encode("abc"), (Ids{257}));
}

TEST_F(LoadTest, NullNormalizerSkipsNfc) {
  json t = MinimalTokenizer();
  t["normalizer"] = nullptr;
  auto tok = LoadJson(t);
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ((*tok)->Decode((*tok)->Encode("e\xCC\x81")), "e\xCC\x81");  // not composed
  auto nfc = LoadJson(MinimalTokenizer());
  EXPECT_EQ((*nfc)->Decode((*nfc)->Encode("e\xCC\x81")), "\xC3\xA9");
}

TEST_F(LoadTest, LstripRstripAddedTokens) {
  json t = MinimalTokenizer();
  t["added_tokens"][0]["lstrip"] = true;
  t["added_tokens"][0]["rstrip"] = true;
  auto tok = LoadJson(t);
  ASSERT_TRUE(tok.ok());
  EXPECT_EQ((*tok)->Encode("x  <|im_end|>  y"), (Ids{'x', 300, 'y'}));
}

TEST_F(LoadTest, MissingFiles) {
  auto r = Tokenizer::Load(dir_.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), file() + ": no such file");
  auto r2 = Tokenizer::Load(dir_.File("nope.json"));
  EXPECT_EQ(r2.status().message(), dir_.File("nope.json") + ": no such file");
}

TEST_F(LoadTest, InvalidJson) {
  testing::WriteFile(file(), "{\"model\": ");
  auto r = Tokenizer::Load(dir_.path());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message().rfind(file() + ": invalid JSON: ", 0), 0u) << r.status().message();
  EXPECT_EQ(r.status().message().find('\n'), std::string::npos);
  testing::WriteFile(dir_.File("tokenizer_config.json"), "[1,");
  testing::WriteFile(file(), MinimalTokenizer().dump());
  auto c = Tokenizer::Load(dir_.path());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message().rfind(dir_.File("tokenizer_config.json") + ": invalid JSON: ", 0), 0u);
}

// Hostile files (docs/security.md): deep nesting is refused before the
// loader copies or compares the tree (on a small stack, where that recursion
// would crash); sizes beyond the limits and devices are refused unread.
TEST_F(LoadTest, DeepNestingAndSizesBeyondTheLimitsAreRefused) {
  json t = MinimalTokenizer();
  t["normalizer"] = "DEEP";
  std::string text = t.dump();
  text.replace(text.find("\"DEEP\""), 6, testing::DeeplyNestedJson(100000));
  testing::WriteFile(file(), text);
  testing::RunWithStack(testing::kSmallStackBytes, [&] {
    EXPECT_EQ(Tokenizer::Load(dir_.path()).status().message(),
              file() + ": JSON is nested deeper than 64 levels");
  });

  testing::WriteFile(file(), MinimalTokenizer().dump());
  testing::WriteFile(dir_.File("tokenizer_config.json"),
                     "{\"chat_template\": " + testing::DeeplyNestedJson(100000) + "}");
  testing::RunWithStack(testing::kSmallStackBytes, [&] {
    EXPECT_EQ(Tokenizer::Load(dir_.path()).status().message(),
              dir_.File("tokenizer_config.json") + ": JSON is nested deeper than 64 levels");
  });

  std::filesystem::resize_file(dir_.File("tokenizer_config.json"), (16 << 20) + 1);
  EXPECT_EQ(Tokenizer::Load(dir_.path()).status().message(),
            dir_.File("tokenizer_config.json") + ": file is larger than 16777216 bytes");
  std::filesystem::remove(dir_.File("tokenizer_config.json"));
  std::filesystem::create_symlink("/dev/zero", dir_.File("tokenizer_config.json"));
  EXPECT_EQ(Tokenizer::Load(dir_.path()).status().message(),
            dir_.File("tokenizer_config.json") + ": not a regular file");
  std::filesystem::remove(dir_.File("tokenizer_config.json"));

  std::filesystem::resize_file(file(), (64 << 20) + 1);  // sparse
  EXPECT_EQ(Tokenizer::Load(dir_.path()).status().message(),
            file() + ": JSON is larger than 67108864 bytes");
}

TEST_F(LoadTest, UnsupportedPipelinesAreRefusedByName) {
  const std::string f = file() + ": ";
  json t = MinimalTokenizer();
  t["normalizer"] = {{"type", "NFKC"}};
  EXPECT_EQ(ErrorOf(t), f + "normalizer: unsupported 'NFKC' (expected NFC or null)");

  t = MinimalTokenizer();
  t["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}};
  const std::string want_pre =
      "expected Sequence[Split(Regex, Isolated), ByteLevel(add_prefix_space=false, use_regex=false)]";
  EXPECT_EQ(ErrorOf(t), f + "pre_tokenizer: " + want_pre);

  t = MinimalTokenizer();
  t["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Removed";
  EXPECT_EQ(ErrorOf(t), f + "pre_tokenizer.pretokenizers[0]: " + want_pre);

  t = MinimalTokenizer();
  t["pre_tokenizer"]["pretokenizers"][1]["use_regex"] = true;
  EXPECT_EQ(ErrorOf(t), f + "pre_tokenizer.pretokenizers[1]: " + want_pre);

  t = MinimalTokenizer();
  t["pre_tokenizer"]["pretokenizers"][0]["pattern"] = {{"Regex", "(unclosed"}};
  EXPECT_EQ(ErrorOf(t), f + "pre_tokenizer.pretokenizers[0].pattern: split regex does not "
                            "compile at offset 9: missing closing parenthesis");

  t = MinimalTokenizer();
  t["decoder"] = {{"type", "WordPiece"}};
  EXPECT_EQ(ErrorOf(t), f + "decoder: unsupported 'WordPiece' (expected ByteLevel)");

  t = MinimalTokenizer();
  t["model"]["type"] = "Unigram";
  EXPECT_EQ(ErrorOf(t), f + "model.type: expected \"BPE\"");

  t = MinimalTokenizer();
  t["model"]["byte_fallback"] = true;
  EXPECT_EQ(ErrorOf(t), f + "model.byte_fallback: must be false");

  t = MinimalTokenizer();
  t["model"]["continuing_subword_prefix"] = "##";
  EXPECT_EQ(ErrorOf(t), f + "model.continuing_subword_prefix: must be empty");
}

TEST_F(LoadTest, BadModelAndAddedTokensAreRefusedByName) {
  const std::string f = file() + ": ";
  json t = MinimalTokenizer();
  t["model"]["merges"][1] = 7;
  EXPECT_EQ(ErrorOf(t), f + "model.merges[1]: expected [\"left\", \"right\"] or \"left right\"");

  t = MinimalTokenizer();
  t["model"]["merges"][0] = json::array({"x", "y"});
  EXPECT_EQ(ErrorOf(t), f + "model.merges[0]: token 'xy' is not in the vocab");

  t = MinimalTokenizer();
  t["model"]["vocab"]["ab"] = "256";
  EXPECT_EQ(ErrorOf(t), f + "model.vocab[\"ab\"]: expected a non-negative integer id");

  t = MinimalTokenizer();
  t["model"]["vocab"] = json::array();
  EXPECT_EQ(ErrorOf(t), f + "model.vocab: expected an object");

  t = MinimalTokenizer();
  t["added_tokens"][1]["single_word"] = true;
  EXPECT_EQ(ErrorOf(t), f + "added_tokens[1].single_word: true is not supported");

  t = MinimalTokenizer();
  t["added_tokens"][0]["normalized"] = true;
  EXPECT_EQ(ErrorOf(t), f + "added_tokens[0].normalized: true is not supported");

  t = MinimalTokenizer();
  t["added_tokens"][0].erase("content");
  EXPECT_EQ(ErrorOf(t),
            f + "added_tokens[0]: expected {\"id\": integer, \"content\": non-empty string, ...}");

  auto r = LoadJson(MinimalTokenizer(), json{{"eos_token", "<nope>"}});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), f + "eos_token '<nope>' is not in the vocab");
}

// model.vocab and model.merges are read while the file streams by
// (tokenizer_json.h), not from a tree: the same results in any key order and
// with the JSON oddities a tree parse would have absorbed.
TEST_F(LoadTest, StreamedVocabAndMergesInAnyLayout) {
  const std::string f = file() + ": ";
  const json t = MinimalTokenizer();
  const json& m = t["model"];
  // Root keys and model keys in a non-sorted order (json::dump sorts them).
  auto text = [&](const std::string& vocab, const std::string& merges) {
    return "{\"model\": {\"merges\": " + merges + ", \"type\": \"BPE\",\n \"vocab\": " + vocab +
           ", \"byte_fallback\": false}, \"decoder\": " + t["decoder"].dump() +
           ", \"added_tokens\": " + t["added_tokens"].dump() + ", \"normalizer\": " +
           t["normalizer"].dump() + ", \"pre_tokenizer\": " + t["pre_tokenizer"].dump() + "}";
  };
  auto load = [&](const std::string& contents) {
    testing::WriteFile(file(), contents);
    return Tokenizer::Load(dir_.path());
  };
  auto error_of = [&](const std::string& contents) -> std::string {
    auto r = load(contents);
    if (r.ok()) return "(loaded)";
    return r.status().message();
  };
  const std::string vocab = m["vocab"].dump(), merges = m["merges"].dump();
  // vocab text without its closing brace, to append entries.
  const std::string open_vocab = vocab.substr(0, vocab.size() - 1);

  auto tok = load(text(vocab, merges));
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->Encode("abc ab<|im_end|>x<think>"), (Ids{257, ' ', 256, 300, 'x', 301}));

  // A later duplicate key wins, as in a tree parse.
  tok = load(text("{\"ab\": \"no\", " + vocab.substr(1), merges));
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->Encode("ab"), (Ids{256}));
  EXPECT_EQ(error_of(text(open_vocab + ", \"ab\": -1}", merges)),
            f + "model.vocab[\"ab\"]: expected a non-negative integer id");

  // Each kind of bad id; with several, the smallest token is named.
  for (const char* bad : {"1.5", "2147483648", "-3", "null", "true", "{\"x\": 1}", "[256]"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(error_of(text(open_vocab + ", \"zz\": " + bad + "}", merges)),
              f + "model.vocab[\"zz\"]: expected a non-negative integer id");
    EXPECT_EQ(error_of(text(open_vocab + ", \"zz\": " + bad + ", \"yy\": " + bad + "}", merges)),
              f + "model.vocab[\"yy\"]: expected a non-negative integer id");
  }
  // Ids index tables: a valid int32 that would size one absurdly is refused.
  EXPECT_EQ(error_of(text(open_vocab + ", \"zz\": 300000}", merges)), "(loaded)");
  EXPECT_EQ(error_of(text(open_vocab + ", \"zz\": 2147483647}", merges)),
            f + "model.vocab: id 2147483647 of token 'zz' is above 16777215");
  json big = MinimalTokenizer();
  big["added_tokens"][1]["id"] = 16777216;
  EXPECT_EQ(ErrorOf(big), f + "added_tokens[1].id: must be at most 16777215");

  // Merges: the first entry of neither form is named by its index, whatever
  // nests inside it; the good ones around it do not shift the count.
  const std::string want1 = f + "model.merges[1]: expected [\"left\", \"right\"] or \"left right\"";
  for (const char* bad : {"[\"a\", \"b\", \"c\"]", "[\"a\"]", "[]", "[\"a\", [\"b\"]]", "[[\"a\", \"b\"]]",
                          "{\"a\": \"b\"}", "\"ab\"", "7", "null", "[\"a\", 1]"}) {
    SCOPED_TRACE(bad);
    EXPECT_EQ(error_of(text(vocab, std::string("[[\"a\", \"b\"], ") + bad + ", [\"ab\", \"c\"], 5]")),
              want1);
    EXPECT_EQ(error_of(text(vocab, std::string("[\"a b\", ") + bad + ", \"ab c\", 5]")), want1);
  }
  // The older string form, mixed with pairs.
  tok = load(text(vocab, "[\"a b\", [\"ab\", \"c\"]]"));
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  EXPECT_EQ((*tok)->Encode("abc"), (Ids{257}));

  // Not an object / not an array: left in the tree, refused by name.
  EXPECT_EQ(error_of(text("[]", merges)), f + "model.vocab: expected an object");
  EXPECT_EQ(error_of(text(vocab, "{}")), f + "model.merges: expected an array");
  // A "model" below the root is not the model.
  EXPECT_EQ(error_of("{\"x\": {\"model\": " + m.dump() + "}, \"model\": {\"type\": \"BPE\"}, " +
                     text(vocab, merges).substr(1)),
            "(loaded)");
  // Truncated files are invalid JSON wherever they stop.
  const std::string whole = text(vocab, merges);
  for (size_t cut : {whole.size() / 3, whole.find("\"vocab\"") + 20, whole.size() - 2}) {
    EXPECT_EQ(error_of(whole.substr(0, cut)).rfind(file() + ": invalid JSON: ", 0), 0u) << cut;
  }
}

}  // namespace
}  // namespace dms
