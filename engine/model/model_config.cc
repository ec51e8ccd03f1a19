#include "engine/model/model_config.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "engine/model/json_fields.h"
#include "common/bounded_json.h"
#include "common/mapped_file.h"
#include "common/text_escape.h"

namespace dms {

using nlohmann::json;
using json_fields::Describe;

namespace {

Status Unsupported(const std::string& source, const std::string& what) {
  return InvalidArgumentError(source + ": unsupported config: " + what);
}

// A size field: positive integer. Absent -> `fallback` when given, else an error.
Status ReadSize(const json& j, const std::string& key, const std::string& source,
                std::optional<int64_t> fallback, int* out) {
  DMS_ASSIGN_OR_RETURN(std::optional<int64_t> v, json_fields::GetInt(j, key, source));
  if (!v) {
    if (!fallback) return InvalidArgumentError(source + ": missing required field '" + key + "'");
    v = fallback;
  }
  if (*v <= 0) {
    return InvalidArgumentError(source + ": " + key + " must be positive, found " +
                                std::to_string(*v));
  }
  if (*v > (int64_t{1} << 30)) {
    return InvalidArgumentError(source + ": " + key + " is too large (" + std::to_string(*v) +
                                ")");
  }
  *out = static_cast<int>(*v);
  return OkStatus();
}

Status ReadPositiveNumber(const json& j, const std::string& key, const std::string& source,
                          double* out) {
  DMS_ASSIGN_OR_RETURN(std::optional<double> v, json_fields::GetNumber(j, key, source));
  if (!v) return OkStatus();  // keep the default
  if (!(*v > 0) || !std::isfinite(*v)) {
    return InvalidArgumentError(source + ": " + key + " must be a positive number, found " +
                                json(*v).dump());
  }
  *out = *v;
  return OkStatus();
}

// rope_scaling (transformers v4) or rope_parameters (v5): only default RoPE.
Status CheckRopeType(const json& j, const std::string& key, const std::string& source) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return OkStatus();
  if (!it->is_object()) {
    return InvalidArgumentError(source + ": " + key + ": expected an object or null, found " +
                                Describe(*it));
  }
  std::string type;
  for (const char* name : {"rope_type", "type"}) {
    auto t = it->find(name);
    if (t != it->end() && t->is_string()) {
      type = t->get<std::string>();
      break;
    }
  }
  if (type.empty()) {
    // rope_parameters may carry only rope_theta; rope_scaling without a type is meaningless.
    if (key == "rope_parameters") return OkStatus();
    return InvalidArgumentError(source + ": " + key +
                                " without a rope_type is not supported (only default RoPE)");
  }
  if (type != "default") {
    return InvalidArgumentError(source + ": " + key + " type '" + EscapeText(type, 64) +
                                "' is not supported (only default RoPE)");
  }
  return OkStatus();
}

Status CheckNoSlidingWindow(const json& j, const std::string& source) {
  DMS_ASSIGN_OR_RETURN(std::optional<bool> use_sw,
                       json_fields::GetBool(j, "use_sliding_window", source));
  if (use_sw.value_or(false)) {
    return Unsupported(source,
                       "use_sliding_window is true (sliding-window attention is not supported)");
  }
  auto lt = j.find("layer_types");
  if (lt != j.end() && !lt->is_null()) {
    if (!lt->is_array()) {
      return InvalidArgumentError(source + ": layer_types: expected a list, found " +
                                  Describe(*lt));
    }
    for (size_t i = 0; i < lt->size(); ++i) {
      const json& t = (*lt)[i];
      if (!t.is_string() || t.get<std::string>() != "full_attention") {
        return Unsupported(source, "layer_types[" + std::to_string(i) + "] is " + Describe(t) +
                                       " (only full_attention is supported)");
      }
    }
  }
  return OkStatus();
}

// A token id: an integer in [0, 2^31).
bool IsTokenId(const json& v) {
  if (v.is_number_unsigned()) return v.get<uint64_t>() <= INT32_MAX;
  return v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= INT32_MAX;
}

Status ReadTokenIds(const json& j, const std::string& source, ModelConfig* c) {
  auto b = j.find("bos_token_id");
  if (b != j.end() && !b->is_null()) {
    if (!IsTokenId(*b)) {
      return InvalidArgumentError(source + ": bos_token_id: expected a token id (an integer in [0, 2^31)), found " +
                                  Describe(*b));
    }
    c->bos_token_id = b->get<int>();
  }
  auto it = j.find("eos_token_id");
  if (it == j.end() || it->is_null()) return OkStatus();
  auto bad = [&] {
    return InvalidArgumentError(source + ": eos_token_id: expected a token id or a list of " +
                                "token ids (integers in [0, 2^31)), found " + Describe(*it));
  };
  if (IsTokenId(*it)) {
    c->eos_token_ids.push_back(it->get<int>());
  } else if (it->is_array()) {
    for (const json& e : *it) {
      if (!IsTokenId(e)) return bad();
      c->eos_token_ids.push_back(e.get<int>());
    }
  } else {
    return bad();
  }
  return OkStatus();
}

// A product of sizes within kMaxSizeProduct: the backends index tensors
// (rows * width) and per-sequence tables in int.
Status CheckProduct(std::initializer_list<int64_t> sizes, const char* what,
                    const std::string& source) {
  int64_t n = 1;
  for (int64_t s : sizes) {
    if (__builtin_mul_overflow(n, s, &n) || n > kMaxSizeProduct) {
      return InvalidArgumentError(source + ": " + what + " is larger than " +
                                  std::to_string(kMaxSizeProduct));
    }
  }
  return OkStatus();
}

// Bounds on what the sizes allocate before any weight is checked: the
// context and products of dimensions (each size alone is <= 2^30).
Status CheckSizeBounds(const ModelConfig& c, const std::string& source) {
  if (c.max_position_embeddings < kMinPositionEmbeddings ||
      c.max_position_embeddings > kMaxPositionEmbeddings) {
    return InvalidArgumentError(source + ": max_position_embeddings (" +
                                std::to_string(c.max_position_embeddings) + ") must be between " +
                                std::to_string(kMinPositionEmbeddings) + " and " +
                                std::to_string(kMaxPositionEmbeddings));
  }
  const int64_t D = c.hidden_size;
  DMS_RETURN_IF_ERROR(CheckProduct({c.vocab_size, D}, "vocab_size * hidden_size", source));
  DMS_RETURN_IF_ERROR(
      CheckProduct({c.intermediate_size, D}, "intermediate_size * hidden_size", source));
  DMS_RETURN_IF_ERROR(CheckProduct({c.num_q_heads, c.head_dim, D},
                                   "num_attention_heads * head_dim * hidden_size", source));
  // The fused q/k/v projection's width: [(Hq + 2 Hkv) * hd] per token.
  DMS_RETURN_IF_ERROR(CheckProduct({c.num_q_heads + 2LL * c.num_kv_heads, c.head_dim},
                                   "(num_attention_heads + 2 * num_key_value_heads) * head_dim",
                                   source));
  return CheckProduct({c.num_layers, c.num_kv_heads},
                      "num_hidden_layers * num_key_value_heads", source);
}

// A float-valued field: finite once narrowed to float.
Status CheckFiniteFloat(double v, const std::string& source, const char* field) {
  if (!std::isfinite(static_cast<float>(v))) {
    return InvalidArgumentError(source + ": " + field + ": " + std::to_string(v) +
                                " is outside the range of a float");
  }
  return OkStatus();
}

// W is bounded by the context: a longer window never evicts, and the cache
// keeps a ring of W+1 entries per head.
Status ReadDms(const json& j, const std::string& source, int max_positions, DmsConfig* d) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key().rfind("dms_", 0) == 0) d->enabled = true;
  }
  if (!d->enabled) return OkStatus();
  DMS_ASSIGN_OR_RETURN(std::optional<double> scale,
                       json_fields::GetNumber(j, "dms_alpha_scale", source));
  if (scale) {
    DMS_RETURN_IF_ERROR(CheckFiniteFloat(*scale, source, "dms_alpha_scale"));
    d->alpha_scale = static_cast<float>(*scale);
  }
  DMS_ASSIGN_OR_RETURN(std::optional<double> offset,
                       json_fields::GetNumber(j, "dms_initial_alpha_offset", source));
  if (offset) {
    DMS_RETURN_IF_ERROR(CheckFiniteFloat(*offset, source, "dms_initial_alpha_offset"));
    d->initial_alpha_offset = static_cast<float>(*offset);
  }
  DMS_ASSIGN_OR_RETURN(std::optional<int64_t> window,
                       json_fields::GetInt(j, "dms_window_size", source));
  if (window) {
    if (*window < 0) {
      return InvalidArgumentError(source + ": dms_window_size must be >= 0, found " +
                                  std::to_string(*window));
    }
    if (*window > max_positions) {
      return InvalidArgumentError(source + ": dms_window_size (" + std::to_string(*window) +
                                  ") is larger than max_position_embeddings (" +
                                  std::to_string(max_positions) + ")");
    }
    d->window_size = static_cast<int>(*window);
  }
  DMS_ASSIGN_OR_RETURN(std::optional<double> cr, json_fields::GetNumber(j, "dms_cr", source));
  if (cr) d->cr = *cr;
  DMS_ASSIGN_OR_RETURN(std::optional<bool> sep,
                       json_fields::GetBool(j, "dms_separate_alpha", source));
  if (sep) d->separate_alpha = *sep;
  DMS_ASSIGN_OR_RETURN(std::optional<std::string> per,
                       json_fields::GetString(j, "dms_alpha_per", source));
  if (per) {
    if (*per == "head") {
      d->alpha_per = DmsAlphaPer::kHead;
    } else if (*per == "layer") {
      d->alpha_per = DmsAlphaPer::kLayer;
    } else {
      return InvalidArgumentError(source + ": dms_alpha_per: expected \"head\" or \"layer\", " +
                                  "found \"" + EscapeText(*per, 64) + "\"");
    }
  }
  DMS_ASSIGN_OR_RETURN(std::optional<bool> disable,
                       json_fields::GetBool(j, "dms_disable_eviction", source));
  if (disable) d->disable_eviction = *disable;
  return OkStatus();
}

}  // namespace

StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& source) {
  DMS_ASSIGN_OR_RETURN(json j, ParseBoundedJson(json_text, kConfigJsonLimits, source, "config"));
  if (!j.is_object()) {
    return InvalidArgumentError(source + ": expected a JSON object, found " + Describe(j));
  }
  ModelConfig c;
  DMS_ASSIGN_OR_RETURN(std::optional<std::string> model_type,
                       json_fields::GetString(j, "model_type", source));
  if (!model_type) return InvalidArgumentError(source + ": missing required field 'model_type'");
  if (*model_type != "qwen3") {
    return InvalidArgumentError(source + ": model_type '" + EscapeText(*model_type, 64) +
                                "' is not supported (only qwen3)");
  }
  c.model_type = *model_type;
  DMS_ASSIGN_OR_RETURN(std::optional<std::string> act,
                       json_fields::GetString(j, "hidden_act", source));
  if (act && *act != "silu") {
    return Unsupported(source, "hidden_act '" + EscapeText(*act, 64) + "' (only silu)");
  }
  DMS_RETURN_IF_ERROR(CheckNoSlidingWindow(j, source));
  DMS_RETURN_IF_ERROR(CheckRopeType(j, "rope_scaling", source));
  DMS_RETURN_IF_ERROR(CheckRopeType(j, "rope_parameters", source));

  DMS_RETURN_IF_ERROR(ReadSize(j, "hidden_size", source, std::nullopt, &c.hidden_size));
  DMS_RETURN_IF_ERROR(
      ReadSize(j, "intermediate_size", source, std::nullopt, &c.intermediate_size));
  DMS_RETURN_IF_ERROR(ReadSize(j, "num_hidden_layers", source, std::nullopt, &c.num_layers));
  DMS_RETURN_IF_ERROR(ReadSize(j, "num_attention_heads", source, std::nullopt, &c.num_q_heads));
  // Hugging Face: num_key_value_heads defaults to num_attention_heads (no GQA).
  DMS_RETURN_IF_ERROR(
      ReadSize(j, "num_key_value_heads", source, c.num_q_heads, &c.num_kv_heads));
  DMS_RETURN_IF_ERROR(ReadSize(j, "vocab_size", source, std::nullopt, &c.vocab_size));
  DMS_RETURN_IF_ERROR(
      ReadSize(j, "max_position_embeddings", source, 32768, &c.max_position_embeddings));
  if (c.num_q_heads % c.num_kv_heads != 0) {
    return InvalidArgumentError(source + ": num_attention_heads (" +
                                std::to_string(c.num_q_heads) +
                                ") is not a multiple of num_key_value_heads (" +
                                std::to_string(c.num_kv_heads) + ")");
  }
  DMS_ASSIGN_OR_RETURN(std::optional<int64_t> hd, json_fields::GetInt(j, "head_dim", source));
  if (!hd && c.hidden_size % c.num_q_heads != 0) {
    return InvalidArgumentError(source + ": head_dim is absent and hidden_size (" +
                                std::to_string(c.hidden_size) +
                                ") is not a multiple of num_attention_heads (" +
                                std::to_string(c.num_q_heads) + ")");
  }
  DMS_RETURN_IF_ERROR(
      ReadSize(j, "head_dim", source, c.hidden_size / c.num_q_heads, &c.head_dim));
  if (c.head_dim % 2 != 0) {
    return InvalidArgumentError(source + ": head_dim (" + std::to_string(c.head_dim) +
                                ") must be even (RoPE rotates pairs of elements)");
  }
  DMS_RETURN_IF_ERROR(CheckSizeBounds(c, source));

  DMS_RETURN_IF_ERROR(ReadPositiveNumber(j, "rms_norm_eps", source, &c.rms_norm_eps));
  c.rope_theta = 10000.0;  // Hugging Face Qwen3Config default
  auto rp = j.find("rope_parameters");
  if (rp != j.end() && rp->is_object()) {
    DMS_RETURN_IF_ERROR(
        ReadPositiveNumber(*rp, "rope_theta", source + ": rope_parameters", &c.rope_theta));
  }
  DMS_RETURN_IF_ERROR(ReadPositiveNumber(j, "rope_theta", source, &c.rope_theta));

  DMS_ASSIGN_OR_RETURN(std::optional<bool> tie,
                       json_fields::GetBool(j, "tie_word_embeddings", source));
  c.tie_word_embeddings = tie.value_or(false);
  DMS_ASSIGN_OR_RETURN(std::optional<bool> bias, json_fields::GetBool(j, "attention_bias", source));
  c.attention_bias = bias.value_or(false);
  DMS_ASSIGN_OR_RETURN(std::optional<std::string> dtype,
                       json_fields::GetString(j, "torch_dtype", source));
  if (!dtype) {  // transformers v5 spells it "dtype"
    DMS_ASSIGN_OR_RETURN(dtype, json_fields::GetString(j, "dtype", source));
  }
  c.torch_dtype = dtype.value_or("");
  DMS_RETURN_IF_ERROR(ReadTokenIds(j, source, &c));
  DMS_RETURN_IF_ERROR(ReadDms(j, source, c.max_position_embeddings, &c.dms));
  return c;
}

StatusOr<ModelConfig> ReadModelConfigFile(const std::string& model_dir) {
  std::string path = model_dir + "/config.json";
  DMS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, kConfigJsonLimits.max_bytes));
  return ParseModelConfig(text, path);
}

std::string ModelConfigToJson(const ModelConfig& c, int indent) {
  nlohmann::ordered_json j;
  j["model_type"] = c.model_type;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_q_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["attention_bias"] = c.attention_bias;
  if (!c.torch_dtype.empty()) j["torch_dtype"] = c.torch_dtype;
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) {
    j["eos_token_id"] = c.eos_token_ids[0];
  } else if (!c.eos_token_ids.empty()) {
    j["eos_token_id"] = c.eos_token_ids;
  }
  if (c.dms.enabled) {
    j["dms_alpha_scale"] = c.dms.alpha_scale;
    j["dms_initial_alpha_offset"] = c.dms.initial_alpha_offset;
    j["dms_window_size"] = c.dms.window_size;
    j["dms_cr"] = c.dms.cr;
    j["dms_separate_alpha"] = c.dms.separate_alpha;
    j["dms_alpha_per"] = c.dms.alpha_per == DmsAlphaPer::kLayer ? "layer" : "head";
    j["dms_disable_eviction"] = c.dms.disable_eviction;
  }
  return j.dump(indent);
}

}  // namespace dms
