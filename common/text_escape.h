// Escaping of text that came from outside (files, requests) before it goes
// into an error message or a log line, so that it can never break the line,
// forge a field, or carry invalid UTF-8.
#pragma once

#include <string>
#include <string_view>

namespace dms {

// Quotes and backslashes get a backslash; control characters, DEL and bytes
// that are not valid UTF-8 become \u00XX; valid UTF-8 stays readable. Output
// is cut (with "...") after max_bytes of input. The result is always one line
// and safe inside a JSON string.
std::string EscapeText(std::string_view text, size_t max_bytes = 256);

// Whether text is valid UTF-8 (no overlong forms, surrogates or code points
// past U+10FFFF: the rule protobuf applies to string fields).
bool IsValidUtf8(std::string_view text);

}  // namespace dms
