#include "common/bounded_json.h"

#include <algorithm>
#include <cstring>

namespace dms {

int JsonNestingDepth(std::string_view text, int stop_above) {
  int depth = 0;
  int deepest = 0;
  const char* p = text.data();
  const char* const end = p + text.size();
  while (p < end) {
    const char c = *p++;
    if (c == '"') {
      // Skip the string (most of a tokenizer.json): it ends at the first
      // quote after an even run of backslashes.
      while (true) {
        const auto* q = static_cast<const char*>(std::memchr(p, '"', end - p));
        if (q == nullptr) return deepest;  // unterminated: invalid JSON
        const char* run = q;
        while (run > p && run[-1] == '\\') --run;
        p = q + 1;
        if ((q - run) % 2 == 0) break;
      }
    } else if (c == '[' || c == '{') {
      if (++depth > stop_above) return stop_above + 1;
      deepest = std::max(deepest, depth);
    } else if (c == ']' || c == '}') {
      --depth;  // below 0 only in invalid JSON, which the parser refuses
    } else if (c == '\0') {
      return deepest;  // nlohmann's parser ends the input at a NUL outside strings
    }
  }
  return deepest;
}

Status CheckJsonLimits(std::string_view text, const JsonLimits& limits, std::string_view source,
                       std::string_view what) {
  const std::string prefix = std::string(source) + ": " + std::string(what);
  if (text.size() > limits.max_bytes) {
    return InvalidArgumentError(prefix + " is larger than " + std::to_string(limits.max_bytes) +
                                " bytes");
  }
  if (JsonNestingDepth(text, limits.max_depth) > limits.max_depth) {
    return InvalidArgumentError(prefix + " is nested deeper than " +
                                std::to_string(limits.max_depth) + " levels");
  }
  return OkStatus();
}

StatusOr<nlohmann::json> ParseBoundedJson(std::string_view text, const JsonLimits& limits,
                                          std::string_view source, std::string_view what) {
  DMS_RETURN_IF_ERROR(CheckJsonLimits(text, limits, source, what));
  const std::string prefix = std::string(source) + ": " + std::string(what);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    // e.byte is 1-based; report the 0-based offset of the offending character
    // (the text length when the input ends too early).
    const size_t at = e.byte > 0 ? e.byte - 1 : 0;
    return InvalidArgumentError(prefix + " is not valid JSON (syntax error at byte " +
                                std::to_string(at) + ")");
  } catch (const nlohmann::json::exception&) {
    return InvalidArgumentError(prefix + " is not valid JSON");
  }
}

}  // namespace dms
