#include "engine/model/json_fields.h"

#include <cmath>

namespace dms::json_fields {

using nlohmann::json;

std::string Describe(const json& value) {
  switch (value.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "a list";
    case json::value_t::string: return "string " + value.dump();
    case json::value_t::boolean: return "boolean " + value.dump();
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return "number " + value.dump();
    default: return "a value of unsupported type";
  }
}

namespace {
Status TypeError(const std::string& source, const std::string& key, const char* expected,
                 const json& found) {
  return InvalidArgumentError(source + ": " + key + ": expected " + expected + ", found " +
                              Describe(found));
}
}  // namespace

StatusOr<std::optional<int64_t>> GetInt(const json& obj, const std::string& key,
                                        const std::string& source) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<int64_t>();
  if (it->is_number_integer()) return std::optional<int64_t>(it->get<int64_t>());
  // Some exporters write integral sizes as 256.0; accept those exactly.
  if (it->is_number_float()) {
    double v = it->get<double>();
    if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9.0e15) {
      return std::optional<int64_t>(static_cast<int64_t>(v));
    }
  }
  return TypeError(source, key, "an integer", *it);
}

StatusOr<std::optional<double>> GetNumber(const json& obj, const std::string& key,
                                          const std::string& source) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<double>();
  if (it->is_number()) return std::optional<double>(it->get<double>());
  return TypeError(source, key, "a number", *it);
}

StatusOr<std::optional<bool>> GetBool(const json& obj, const std::string& key,
                                      const std::string& source) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<bool>();
  if (it->is_boolean()) return std::optional<bool>(it->get<bool>());
  return TypeError(source, key, "true or false", *it);
}

StatusOr<std::optional<std::string>> GetString(const json& obj, const std::string& key,
                                               const std::string& source) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return std::optional<std::string>();
  if (it->is_string()) return std::optional<std::string>(it->get<std::string>());
  return TypeError(source, key, "a string", *it);
}

}  // namespace dms::json_fields
