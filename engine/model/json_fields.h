// Small helpers for reading typed fields out of nlohmann::json with one-line
// errors ("<source>: <field>: expected an integer, found string \"4\"").
// Internal to dms_model; nothing here throws.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "common/status.h"

namespace dms::json_fields {

// "string \"abc\"", "number 1.5", "null", "object", "list", "boolean true".
std::string Describe(const nlohmann::json& value);

// Each getter returns std::nullopt when the key is absent or null, an error
// when present with the wrong type.
StatusOr<std::optional<int64_t>> GetInt(const nlohmann::json& obj, const std::string& key,
                                        const std::string& source);
StatusOr<std::optional<double>> GetNumber(const nlohmann::json& obj, const std::string& key,
                                          const std::string& source);
StatusOr<std::optional<bool>> GetBool(const nlohmann::json& obj, const std::string& key,
                                      const std::string& source);
StatusOr<std::optional<std::string>> GetString(const nlohmann::json& obj,
                                               const std::string& key,
                                               const std::string& source);

}  // namespace dms::json_fields
