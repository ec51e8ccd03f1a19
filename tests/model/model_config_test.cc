// ParseModelConfig: Qwen3 + DMS fields, defaults, and one exact error line per
// unsupported or malformed config.
#include "engine/model/model_config.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "engine/model/checkpoint.h"
#include "tests/model/model_test_util.h"
#include "tests/test_util.h"

namespace dms {
namespace {

using nlohmann::json;
using testing::SmallConfig;

StatusOr<ModelConfig> Parse(const json& j) { return ParseModelConfig(j.dump(), "config.json"); }

std::string ErrorOf(const json& j) {
  auto c = Parse(j);
  if (c.ok()) return "(parsed fine)";
  return c.status().message();
}

json Without(json j, const std::string& key) {
  j.erase(key);
  return j;
}

json With(json j, const std::string& key, json value) {
  j[key] = std::move(value);
  return j;
}

TEST(ModelConfigTest, ParsesQwen3Fields) {
  auto c = Parse(SmallConfig());
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->model_type, "qwen3");
  EXPECT_EQ(c->hidden_size, 48);
  EXPECT_EQ(c->intermediate_size, 96);
  EXPECT_EQ(c->num_layers, 2);
  EXPECT_EQ(c->num_q_heads, 4);
  EXPECT_EQ(c->num_kv_heads, 2);
  EXPECT_EQ(c->group_size(), 2);
  EXPECT_EQ(c->head_dim, 16);
  EXPECT_EQ(c->vocab_size, 80);
  EXPECT_EQ(c->max_position_embeddings, 256);
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_FALSE(c->attention_bias);
  EXPECT_EQ(c->torch_dtype, "bfloat16");
  EXPECT_EQ(c->bos_token_id, 1);
  EXPECT_EQ(c->eos_token_ids, std::vector<int>{2});
}

TEST(ModelConfigTest, DmsDefaultsApplyOnceAnyDmsKeyIsPresent) {
  auto c = Parse(SmallConfig());  // has only dms_window_size
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->dms.enabled);
  EXPECT_EQ(c->dms.window_size, 4);
  EXPECT_FLOAT_EQ(c->dms.alpha_scale, 100.0f);
  EXPECT_FLOAT_EQ(c->dms.initial_alpha_offset, 5.0f);
  EXPECT_DOUBLE_EQ(c->dms.cr, 8.0);
  EXPECT_FALSE(c->dms.separate_alpha);
  EXPECT_EQ(c->dms.alpha_per, DmsAlphaPer::kHead);
  EXPECT_FALSE(c->dms.disable_eviction);
}

TEST(ModelConfigTest, PlainQwen3HasNoDms) {
  auto c = Parse(Without(SmallConfig(), "dms_window_size"));
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->dms.enabled);
}

TEST(ModelConfigTest, ParsesEveryDmsField) {
  json j = SmallConfig();
  j["dms_alpha_scale"] = 50.0;
  j["dms_initial_alpha_offset"] = 2.5;
  j["dms_window_size"] = 0;
  j["dms_cr"] = 4;
  j["dms_separate_alpha"] = true;
  j["dms_alpha_per"] = "layer";
  j["dms_disable_eviction"] = true;
  auto c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_FLOAT_EQ(c->dms.alpha_scale, 50.0f);
  EXPECT_FLOAT_EQ(c->dms.initial_alpha_offset, 2.5f);
  EXPECT_EQ(c->dms.window_size, 0);
  EXPECT_DOUBLE_EQ(c->dms.cr, 4.0);
  EXPECT_TRUE(c->dms.separate_alpha);
  EXPECT_EQ(c->dms.alpha_per, DmsAlphaPer::kLayer);
  EXPECT_TRUE(c->dms.disable_eviction);
}

TEST(ModelConfigTest, Defaults) {
  json j = SmallConfig();
  for (const char* k :
       {"head_dim", "num_key_value_heads", "rope_theta", "rms_norm_eps", "max_position_embeddings",
        "tie_word_embeddings", "bos_token_id", "eos_token_id", "torch_dtype"}) {
    j.erase(k);
  }
  auto c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->head_dim, 12);                // hidden / heads
  EXPECT_EQ(c->num_kv_heads, 4);             // = num_attention_heads
  EXPECT_DOUBLE_EQ(c->rope_theta, 10000.0);  // transformers' Qwen3Config default
  EXPECT_DOUBLE_EQ(c->rms_norm_eps, 1e-6);
  EXPECT_EQ(c->max_position_embeddings, 32768);
  EXPECT_FALSE(c->tie_word_embeddings);
  EXPECT_EQ(c->bos_token_id, -1);
  EXPECT_TRUE(c->eos_token_ids.empty());
  EXPECT_EQ(c->torch_dtype, "");
}

TEST(ModelConfigTest, RopeThetaInRopeParameters) {
  json j = Without(SmallConfig(), "rope_theta");
  j["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 5e5}};
  auto c = Parse(j);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_DOUBLE_EQ(c->rope_theta, 5e5);
}

TEST(ModelConfigTest, EosTokenIdListAndDtypeSpelling) {
  json j = Without(SmallConfig(), "torch_dtype");
  j["eos_token_id"] = {151645, 151643};
  j["dtype"] = "float16";
  auto c = Parse(j);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->eos_token_ids, (std::vector<int>{151645, 151643}));
  EXPECT_EQ(c->torch_dtype, "float16");
}

TEST(ModelConfigTest, DefaultRopeScalingAndFullAttentionLayerTypesAreFine) {
  json j = SmallConfig();
  j["rope_scaling"] = {{"rope_type", "default"}};
  j["layer_types"] = {"full_attention", "full_attention"};
  j["sliding_window"] = 4096;  // ignored while use_sliding_window is false
  EXPECT_TRUE(Parse(j).ok()) << ErrorOf(j);
}

TEST(ModelConfigTest, IntegralFloatsAreAcceptedAsSizes) {
  auto c = Parse(With(SmallConfig(), "hidden_size", 48.0));
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->hidden_size, 48);
}

TEST(ModelConfigTest, ToJsonRoundTrips) {
  json j = SmallConfig();
  j["dms_separate_alpha"] = true;
  j["dms_alpha_per"] = "layer";
  j["eos_token_id"] = {7, 8};
  j["tie_word_embeddings"] = true;
  auto a = Parse(j);
  ASSERT_TRUE(a.ok());
  auto b = ParseModelConfig(ModelConfigToJson(*a), "round trip");
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(ModelConfigToJson(*a), ModelConfigToJson(*b));
  EXPECT_EQ(b->eos_token_ids, (std::vector<int>{7, 8}));
  EXPECT_TRUE(b->dms.separate_alpha);
  EXPECT_EQ(b->dms.alpha_per, DmsAlphaPer::kLayer);
  EXPECT_TRUE(b->tie_word_embeddings);
  // A plain Qwen3 config stays plain.
  auto plain = Parse(Without(SmallConfig(), "dms_window_size"));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(ModelConfigToJson(*plain).find("dms_"), std::string::npos);
}

// --- errors: one exact line each ---

TEST(ModelConfigErrorTest, NotJson) {
  auto c = ParseModelConfig("{\"hidden_size\": 4", "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().message(), "cfg.json: config is not valid JSON (syntax error at byte 17)");
}

TEST(ModelConfigErrorTest, NotAnObject) {
  EXPECT_EQ(ErrorOf(json::array({1, 2})), "config.json: expected a JSON object, found a list");
}

TEST(ModelConfigErrorTest, MissingRequiredField) {
  EXPECT_EQ(ErrorOf(Without(SmallConfig(), "hidden_size")),
            "config.json: missing required field 'hidden_size'");
  EXPECT_EQ(ErrorOf(Without(SmallConfig(), "vocab_size")),
            "config.json: missing required field 'vocab_size'");
  EXPECT_EQ(ErrorOf(Without(SmallConfig(), "model_type")),
            "config.json: missing required field 'model_type'");
}

TEST(ModelConfigErrorTest, WrongType) {
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "num_hidden_layers", "2")),
            "config.json: num_hidden_layers: expected an integer, found string \"2\"");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "hidden_size", 48.5)),
            "config.json: hidden_size: expected an integer, found number 48.5");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "tie_word_embeddings", "yes")),
            "config.json: tie_word_embeddings: expected true or false, found string \"yes\"");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "rope_theta", "1e6")),
            "config.json: rope_theta: expected a number, found string \"1e6\"");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "eos_token_id", "</s>")),
            "config.json: eos_token_id: expected a token id or a list of token ids (integers in "
            "[0, 2^31)), found string \"</s>\"");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "dms_separate_alpha", 1)),
            "config.json: dms_separate_alpha: expected true or false, found number 1");
}

// Values that would be silently changed (fuzz findings F4-F6 in docs/fuzzing.md).
TEST(ModelConfigErrorTest, OutOfRangeIdsAndFloatsAreRefused) {
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "bos_token_id", -3)),
            "config.json: bos_token_id: expected a token id (an integer in [0, 2^31)), found number -3");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "eos_token_id", 4294967298LL)),
            "config.json: eos_token_id: expected a token id or a list of token ids (integers in "
            "[0, 2^31)), found number 4294967298");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "dms_alpha_scale", 1e300)).rfind(
                "config.json: dms_alpha_scale: ", 0),
            0u);
  EXPECT_NE(ErrorOf(With(SmallConfig(), "dms_alpha_scale", 1e300)).find("outside the range of a float"),
            std::string::npos);
}

TEST(ModelConfigErrorTest, NonPositiveSizes) {
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "hidden_size", 0)),
            "config.json: hidden_size must be positive, found 0");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "num_key_value_heads", -2)),
            "config.json: num_key_value_heads must be positive, found -2");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "head_dim", 0)),
            "config.json: head_dim must be positive, found 0");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "rms_norm_eps", 0)),
            "config.json: rms_norm_eps must be a positive number, found 0.0");
}

TEST(ModelConfigErrorTest, HeadsNotAMultipleOfKvHeads) {
  json j = SmallConfig();
  j["num_attention_heads"] = 6;
  j["num_key_value_heads"] = 4;
  EXPECT_EQ(ErrorOf(j),
            "config.json: num_attention_heads (6) is not a multiple of num_key_value_heads (4)");
}

TEST(ModelConfigErrorTest, OddHeadDim) {
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "head_dim", 15)),
            "config.json: head_dim (15) must be even (RoPE rotates pairs of elements)");
  json j = Without(SmallConfig(), "head_dim");
  j["hidden_size"] = 50;
  EXPECT_EQ(ErrorOf(j),
            "config.json: head_dim is absent and hidden_size (50) is not a multiple of "
            "num_attention_heads (4)");
}

TEST(ModelConfigErrorTest, SlidingWindow) {
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "use_sliding_window", true)),
            "config.json: unsupported config: use_sliding_window is true (sliding-window "
            "attention is not supported)");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "layer_types", {"full_attention", "sliding_attention"})),
            "config.json: unsupported config: layer_types[1] is string \"sliding_attention\" "
            "(only full_attention is supported)");
}

TEST(ModelConfigErrorTest, RopeScaling) {
  for (const char* type : {"yarn", "linear", "dynamic"}) {
    EXPECT_EQ(ErrorOf(With(SmallConfig(), "rope_scaling", {{"rope_type", type}, {"factor", 4.0}})),
              std::string("config.json: rope_scaling type '") + type +
                  "' is not supported (only default RoPE)");
  }
  // Old spelling "type".
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "rope_scaling", {{"type", "linear"}, {"factor", 2.0}})),
            "config.json: rope_scaling type 'linear' is not supported (only default RoPE)");
  EXPECT_EQ(
      ErrorOf(With(SmallConfig(), "rope_parameters", {{"rope_type", "yarn"}, {"rope_theta", 1e6}})),
      "config.json: rope_parameters type 'yarn' is not supported (only default RoPE)");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "rope_scaling", {{"factor", 2.0}})),
            "config.json: rope_scaling without a rope_type is not supported (only default RoPE)");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "rope_scaling", "yarn")),
            "config.json: rope_scaling: expected an object or null, found string \"yarn\"");
}

TEST(ModelConfigErrorTest, DmsFields) {
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "dms_alpha_per", "token")),
            "config.json: dms_alpha_per: expected \"head\" or \"layer\", found \"token\"");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "dms_window_size", -1)),
            "config.json: dms_window_size must be >= 0, found -1");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "dms_alpha_scale", "100")),
            "config.json: dms_alpha_scale: expected a number, found string \"100\"");
}

TEST(ModelConfigErrorTest, ModelType) {
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "model_type", "llama")),
            "config.json: model_type 'llama' is not supported (only qwen3)");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "model_type", "qwen3_moe")),
            "config.json: model_type 'qwen3_moe' is not supported (only qwen3)");
}

TEST(ModelConfigErrorTest, HiddenAct) {
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "hidden_act", "gelu")),
            "config.json: unsupported config: hidden_act 'gelu' (only silu)");
}

// Sizes that pass "positive and at most 2^30" one by one but cannot be
// served: the context, the window against it, products of dimensions.
TEST(ModelConfigErrorTest, SizesBeyondWhatCanBeServed) {
  const std::string range = " must be between 16 and 1048576";
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "max_position_embeddings", 1)),
            "config.json: max_position_embeddings (1)" + range);
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "max_position_embeddings", 15)),
            "config.json: max_position_embeddings (15)" + range);
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "max_position_embeddings", (1 << 20) + 1)),
            "config.json: max_position_embeddings (1048577)" + range);
  EXPECT_TRUE(Parse(With(SmallConfig(), "max_position_embeddings", 16)).ok());
  EXPECT_TRUE(Parse(With(SmallConfig(), "max_position_embeddings", 1 << 20)).ok());

  EXPECT_EQ(ErrorOf(With(SmallConfig(), "dms_window_size", 1 << 30)),
            "config.json: dms_window_size (1073741824) is larger than max_position_embeddings "
            "(256)");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "dms_window_size", 257)),
            "config.json: dms_window_size (257) is larger than max_position_embeddings (256)");
  EXPECT_TRUE(Parse(With(SmallConfig(), "dms_window_size", 256)).ok());

  EXPECT_EQ(ErrorOf(With(With(SmallConfig(), "vocab_size", 1 << 30), "hidden_size", 1 << 30)),
            "config.json: vocab_size * hidden_size is larger than 2147483647");
  EXPECT_EQ(ErrorOf(With(SmallConfig(), "intermediate_size", 1 << 30)),
            "config.json: intermediate_size * hidden_size is larger than 2147483647");
  // 2^28 heads of 16 times 48: each product of two fits, of three not.
  EXPECT_EQ(ErrorOf(With(With(SmallConfig(), "num_attention_heads", 1 << 28),
                         "num_key_value_heads", 1 << 28)),
            "config.json: num_attention_heads * head_dim * hidden_size is larger than 2147483647");
  // 2^26 heads of 16, hidden_size 1: q fits (2^30), q + k + v (3 * 2^30) not.
  json wide = With(With(SmallConfig(), "num_attention_heads", 1 << 26), "num_key_value_heads",
                   1 << 26);
  wide["hidden_size"] = 1;
  EXPECT_EQ(ErrorOf(wide),
            "config.json: (num_attention_heads + 2 * num_key_value_heads) * head_dim is larger "
            "than 2147483647");
  EXPECT_EQ(ErrorOf(With(With(SmallConfig(), "num_hidden_layers", 1 << 30), "num_key_value_heads",
                         4)),
            "config.json: num_hidden_layers * num_key_value_heads is larger than 2147483647");
}

// Text beyond kConfigJsonLimits is refused before it is parsed; nesting is
// refused on a small stack, where a recursive walk of it would crash.
TEST(ModelConfigErrorTest, TextBeyondTheLimits) {
  std::string big = SmallConfig().dump();
  big.append((1 << 20) + 1 - big.size(), ' ');
  EXPECT_EQ(ParseModelConfig(big, "config.json").status().message(),
            "config.json: config is larger than 1048576 bytes");
  std::string deep = SmallConfig().dump();
  deep.insert(1, "\"x\": " + testing::DeeplyNestedJson(100000) + ", ");
  testing::RunWithStack(testing::kSmallStackBytes, [&] {
    EXPECT_EQ(ParseModelConfig(deep, "config.json").status().message(),
              "config.json: config is nested deeper than 64 levels");
  });
  // 64 levels are fine.
  std::string ok = SmallConfig().dump();
  ok.insert(1, "\"x\": " + testing::DeeplyNestedJson(63) + ", ");
  EXPECT_TRUE(ParseModelConfig(ok, "config.json").ok());
}

TEST(ModelConfigTest, LoadModelConfigNamesThePath) {
  testing::TempDir tmp;
  auto missing = LoadModelConfig(tmp.path());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(), tmp.File("config.json") + ": no such file");
  testing::WriteFile(tmp.File("config.json"), With(SmallConfig(), "head_dim", 3).dump());
  auto bad = LoadModelConfig(tmp.path());
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(
      bad.status().message(),
      tmp.File("config.json") + ": head_dim (3) must be even (RoPE rotates pairs of elements)");
}

}  // namespace
}  // namespace dms
