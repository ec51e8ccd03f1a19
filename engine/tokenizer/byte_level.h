// The GPT-2 byte-to-unicode map used by byte-level BPE: every byte value is
// shown as one printable code point so vocab entries are valid strings.
// Printable bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) map to
// themselves; the other 68 bytes map to U+0100 + n in byte order.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dms {

class ByteLevelMap {
 public:
  // The process-wide table (immutable, thread-safe).
  static const ByteLevelMap& Get();

  // The code point standing for byte b.
  char32_t CharFor(uint8_t b) const { return byte_to_char_[b]; }
  // The byte that code point c stands for, or nullopt.
  std::optional<uint8_t> ByteFor(char32_t c) const {
    if (c >= char_to_byte_.size() || char_to_byte_[c] < 0) return std::nullopt;
    return static_cast<uint8_t>(char_to_byte_[c]);
  }

  // Byte-level string (each byte as its code point, UTF-8) for raw bytes.
  std::string Encode(std::string_view bytes) const;

  // Appends the raw bytes a vocab token stands for, as Hugging Face's
  // ByteLevel decoder does: when every code point of `token` is in the map,
  // the mapped bytes; otherwise the token's own UTF-8 bytes unchanged.
  void AppendTokenBytes(std::string_view token, std::string* out) const;

 private:
  ByteLevelMap();
  std::array<char32_t, 256> byte_to_char_{};
  std::array<int16_t, 324> char_to_byte_{};  // every mapped code point < 0x144
};

}  // namespace dms
