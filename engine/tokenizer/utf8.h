// UTF-8 helpers for the tokenizer: code point iteration, the length of a
// well-formed prefix, and lossy decoding with the replacement rules of
// Python's errors='replace' and Rust's String::from_utf8_lossy (one U+FFFD per
// "maximal subpart of an ill-formed subsequence", Unicode 15 section 3.9).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace dms::utf8 {

// U+FFFD encoded in UTF-8.
inline constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Length of the well-formed UTF-8 sequence starting at s[pos], or 0 when the
// bytes there are ill-formed or truncated. pos < s.size().
size_t ValidSequenceLength(std::string_view s, size_t pos);

// Length of the maximal subpart starting at s[pos] (bytes that begin a
// well-formed sequence but do not complete it): at least 1. Used when
// ValidSequenceLength() returned 0.
size_t MaximalSubpartLength(std::string_view s, size_t pos);

// True when s[pos..] is a proper prefix of some well-formed sequence: more
// bytes could still complete it (streaming must wait for them).
bool IsIncompletePrefix(std::string_view s, size_t pos);

// Appends s to *out, replacing each maximal ill-formed subpart by U+FFFD.
void AppendLossy(std::string_view s, std::string* out);
std::string DecodeLossy(std::string_view s);

// True when s is entirely well-formed UTF-8.
bool IsValid(std::string_view s);

// Decodes the code point at s[pos] (which must start a well-formed
// sequence) and returns it; *len receives its byte length.
char32_t DecodeAt(std::string_view s, size_t pos, size_t* len);

// Appends the UTF-8 encoding of cp (cp <= 0x10FFFF, not a surrogate).
void Append(char32_t cp, std::string* out);

}  // namespace dms::utf8
