#include "engine/runtime/generation_config.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "engine/model/json_fields.h"
#include "common/bounded_json.h"
#include "common/mapped_file.h"

namespace dms {

SamplingParams GenerationDefaults::Apply(SamplingParams p) const {
  if (temperature) p.temperature = *temperature;
  if (top_p) p.top_p = *top_p;
  if (top_k) p.top_k = *top_k;
  if (min_p) p.min_p = *min_p;
  if (repetition_penalty) p.repetition_penalty = *repetition_penalty;
  return p;
}

StatusOr<GenerationDefaults> ParseGenerationConfig(const std::string& json_text,
                                                   const std::string& source) {
  DMS_ASSIGN_OR_RETURN(nlohmann::json j,
                       ParseBoundedJson(json_text, kConfigJsonLimits, source, "generation config"));
  if (!j.is_object())
    return InvalidArgumentError(source + ": expected a JSON object, found " +
                                json_fields::Describe(j));
  GenerationDefaults d;
  auto number = [&](const char* key, std::optional<float>* out) -> Status {
    DMS_ASSIGN_OR_RETURN(std::optional<double> v, json_fields::GetNumber(j, key, source));
    if (v) *out = static_cast<float>(*v);
    return OkStatus();
  };
  DMS_RETURN_IF_ERROR(number("temperature", &d.temperature));
  DMS_RETURN_IF_ERROR(number("top_p", &d.top_p));
  DMS_RETURN_IF_ERROR(number("min_p", &d.min_p));
  DMS_RETURN_IF_ERROR(number("repetition_penalty", &d.repetition_penalty));
  DMS_ASSIGN_OR_RETURN(std::optional<int64_t> top_k, json_fields::GetInt(j, "top_k", source));
  if (top_k) {
    if (*top_k < -1 || *top_k > (int64_t{1} << 30)) {
      return InvalidArgumentError(source + ": top_k must be -1, 0 or a positive count, found " +
                                  std::to_string(*top_k));
    }
    d.top_k = static_cast<int>(*top_k);
  }
  // do_sample false: greedy, as transformers decodes it.
  DMS_ASSIGN_OR_RETURN(std::optional<bool> do_sample, json_fields::GetBool(j, "do_sample", source));
  if (do_sample && !*do_sample) d.temperature = 0.0f;
  Status st = ValidateSamplingParams(d.Apply(SamplingParams{}));
  if (!st.ok()) return InvalidArgumentError(source + ": " + st.message());
  return d;
}

StatusOr<GenerationDefaults> LoadGenerationConfig(const std::string& model_dir) {
  const std::string path = model_dir + "/generation_config.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return GenerationDefaults{};
  DMS_ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, kConfigJsonLimits.max_bytes));
  return ParseGenerationConfig(text, path);
}

}  // namespace dms
