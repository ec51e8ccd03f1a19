// Fuzz target: ParseModelConfig over config.json text (the input).
//
// Properties: an error is one non-empty line starting with "config.json: ";
// text beyond kConfigJsonLimits (size, nesting) is refused with exactly that
// limit's line, and only then (fuzz_util.h, CheckJsonLimitsContract).
// An accepted config is servable (positive sizes, Hq a multiple of Hkv, even
// head_dim, a context in [16, 2^20], W in [0, context], products of sizes
// within INT32_MAX, finite positive eps and theta, finite DMS alpha scale
// and offset), every integer it read equals the JSON value exactly (an
// independent nlohmann parse: no silent truncation of sizes or token ids),
// it survives ModelConfigToJson and a second parse unchanged, and
// ExpectedTensors gives positive shapes for it.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <utility>

#include "engine/model/model_config.h"
#include "engine/model/tensor_layout.h"
#include "tests/fuzz/fuzz_util.h"

namespace dms::fuzz {
namespace {

using nlohmann::json;

constexpr char kSource[] = "config.json";

// The value the JSON holds for an integer key, as a double (exact for the
// sizes the parser accepts, <= 2^30), or NAN when absent or null.
double JsonNumber(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number()) return NAN;
  return it->get<double>();
}

void CheckSize(const json& j, const char* key, int value) {
  FUZZ_CHECK(value > 0 && value <= (1 << 30), std::string(key) + " = " + std::to_string(value));
  const double v = JsonNumber(j, key);
  if (!std::isnan(v)) FUZZ_CHECK(v == value, std::string(key) + " is " + std::to_string(value) + " but the JSON says " + std::to_string(v));
}

void CheckTokenIds(const json& j, const ModelConfig& c) {
  auto bos = j.find("bos_token_id");
  if (bos == j.end() || bos->is_null()) {
    FUZZ_CHECK(c.bos_token_id == -1, "bos_token_id " + std::to_string(c.bos_token_id) + " from nothing");
  } else {
    FUZZ_CHECK(bos->get<double>() == c.bos_token_id,
               "bos_token_id " + std::to_string(c.bos_token_id) + " from JSON " + bos->dump());
  }
  auto eos = j.find("eos_token_id");
  json list = json::array();
  if (eos != j.end() && !eos->is_null()) list = eos->is_array() ? *eos : json::array({*eos});
  FUZZ_CHECK(list.size() == c.eos_token_ids.size(), "eos_token_id count");
  for (size_t i = 0; i < list.size(); ++i) {
    FUZZ_CHECK(list[i].is_number_integer(), "accepted eos_token_id " + list.dump());
    FUZZ_CHECK(list[i].get<double>() == c.eos_token_ids[i],
               "eos_token_id " + std::to_string(c.eos_token_ids[i]) + " from JSON " + list[i].dump());
  }
}

// The first field that differs, or "" when the configs are the same.
std::string FirstDifference(const ModelConfig& a, const ModelConfig& b) {
  const std::pair<const char*, bool> fields[] = {
      {"model_type", a.model_type == b.model_type},
      {"hidden_size", a.hidden_size == b.hidden_size},
      {"intermediate_size", a.intermediate_size == b.intermediate_size},
      {"num_layers", a.num_layers == b.num_layers},
      {"num_q_heads", a.num_q_heads == b.num_q_heads},
      {"num_kv_heads", a.num_kv_heads == b.num_kv_heads},
      {"head_dim", a.head_dim == b.head_dim},
      {"vocab_size", a.vocab_size == b.vocab_size},
      {"max_position_embeddings", a.max_position_embeddings == b.max_position_embeddings},
      {"rms_norm_eps", a.rms_norm_eps == b.rms_norm_eps},
      {"rope_theta", a.rope_theta == b.rope_theta},
      {"tie_word_embeddings", a.tie_word_embeddings == b.tie_word_embeddings},
      {"attention_bias", a.attention_bias == b.attention_bias},
      {"torch_dtype", a.torch_dtype == b.torch_dtype},
      {"bos_token_id", a.bos_token_id == b.bos_token_id},
      {"eos_token_ids", a.eos_token_ids == b.eos_token_ids},
      {"dms.enabled", a.dms.enabled == b.dms.enabled},
      {"dms.alpha_scale", a.dms.alpha_scale == b.dms.alpha_scale},
      {"dms.initial_alpha_offset", a.dms.initial_alpha_offset == b.dms.initial_alpha_offset},
      {"dms.window_size", a.dms.window_size == b.dms.window_size},
      {"dms.cr", a.dms.cr == b.dms.cr},
      {"dms.separate_alpha", a.dms.separate_alpha == b.dms.separate_alpha},
      {"dms.alpha_per", a.dms.alpha_per == b.dms.alpha_per},
      {"dms.disable_eviction", a.dms.disable_eviction == b.dms.disable_eviction},
  };
  for (const auto& [name, same] : fields) {
    if (!same) return name;
  }
  return "";
}

void CheckAccepted(const std::string& text, const ModelConfig& c) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  FUZZ_CHECK(j.is_object(), "accepted a config that is not a JSON object");
  FUZZ_CHECK(c.model_type == "qwen3", "model_type " + Printable(c.model_type));
  CheckSize(j, "hidden_size", c.hidden_size);
  CheckSize(j, "intermediate_size", c.intermediate_size);
  CheckSize(j, "num_hidden_layers", c.num_layers);
  CheckSize(j, "num_attention_heads", c.num_q_heads);
  CheckSize(j, "num_key_value_heads", c.num_kv_heads);
  CheckSize(j, "head_dim", c.head_dim);
  CheckSize(j, "vocab_size", c.vocab_size);
  CheckSize(j, "max_position_embeddings", c.max_position_embeddings);
  FUZZ_CHECK(c.num_q_heads % c.num_kv_heads == 0, "Hq not a multiple of Hkv");
  FUZZ_CHECK(c.head_dim % 2 == 0, "odd head_dim");
  FUZZ_CHECK(std::isfinite(c.rms_norm_eps) && c.rms_norm_eps > 0, "rms_norm_eps");
  FUZZ_CHECK(std::isfinite(c.rope_theta) && c.rope_theta > 0, "rope_theta");
  FUZZ_CHECK(c.max_position_embeddings >= kMinPositionEmbeddings &&
                 c.max_position_embeddings <= kMaxPositionEmbeddings,
             "max_position_embeddings " + std::to_string(c.max_position_embeddings));
  FUZZ_CHECK(c.dms.window_size >= 0 && c.dms.window_size <= c.max_position_embeddings,
             "dms_window_size " + std::to_string(c.dms.window_size));
  const int64_t D = c.hidden_size, hd = c.head_dim;
  for (const auto& [what, product] :
       {std::pair<const char*, __int128>{"V * D", __int128{c.vocab_size} * D},
        {"I * D", __int128{c.intermediate_size} * D},
        {"Hq * hd * D", __int128{c.num_q_heads} * hd * D},
        {"(Hq + 2 Hkv) * hd", (__int128{c.num_q_heads} + 2 * c.num_kv_heads) * hd},
        {"L * Hkv", __int128{c.num_layers} * c.num_kv_heads}}) {
    FUZZ_CHECK(product <= kMaxSizeProduct, std::string(what) + " is over INT32_MAX");
  }
  // A JSON number beyond float range must be refused, not become infinity.
  FUZZ_CHECK(std::isfinite(c.dms.alpha_scale) && std::isfinite(c.dms.initial_alpha_offset),
             "dms_alpha_scale " + std::to_string(c.dms.alpha_scale) + ", dms_initial_alpha_offset " +
                 std::to_string(c.dms.initial_alpha_offset));
  CheckTokenIds(j, c);

  StatusOr<ModelConfig> again = ParseModelConfig(ModelConfigToJson(c), kSource);
  FUZZ_CHECK(again.ok(), "ModelConfigToJson output is refused: " + again.status().message());
  const std::string diff = FirstDifference(c, *again);
  FUZZ_CHECK(diff.empty(), diff + " changed through ModelConfigToJson and a second parse");

  if (c.num_layers <= 64) {  // bigger ones only cost time
    size_t per_layer = 11 + (c.attention_bias ? 4 : 0) + (c.dms.enabled && c.dms.separate_alpha ? 2 : 0);
    const auto slots = ExpectedTensors(c);
    FUZZ_CHECK(slots.size() == 2 + (c.tie_word_embeddings ? 0 : 1) + per_layer * c.num_layers,
               std::to_string(slots.size()) + " tensors");
    for (const TensorSlot& s : slots) {
      for (int64_t d : s.shape) FUZZ_CHECK(d > 0, s.name + " has a dimension " + std::to_string(d));
    }
  }
}

}  // namespace
}  // namespace dms::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace dms::fuzz;
  const std::string text(reinterpret_cast<const char*>(data), size);
  dms::StatusOr<dms::ModelConfig> c = dms::ParseModelConfig(text, kSource);
  if (CheckJsonLimitsContract(text, dms::kConfigJsonLimits, c.status(), "config.json: config")) {
    return 0;
  }
  if (c.ok()) {
    CheckAccepted(text, *c);
  } else {
    CheckError(c.status(), std::string(kSource) + ": ");
  }
  return 0;
}
