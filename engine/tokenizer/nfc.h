// Unicode NFC normalization (utf8proc) with a fast path: text made only of
// "inert" code points is already NFC and is returned without copying. A code
// point is inert when it is a starter (ccc 0), never composes with a code
// point before it, and is its own NFC; such a code point is a boundary that
// no normalization step crosses, so only the windows around non-inert code
// points need utf8proc, and plain ASCII never does.
#pragma once

#include <string>
#include <string_view>

namespace dms {

// Returns NFC(text). `text` must be valid UTF-8. When text is already known
// to be NFC by the inert test the result views `text` itself; otherwise it
// views *scratch, which receives the normalized text. Thread-safe.
std::string_view NormalizeNfc(std::string_view text, std::string* scratch);

// True when code point cp is inert (see above). Exposed for tests.
bool IsNfcInert(char32_t cp);

}  // namespace dms
