#include "engine/tokenizer/byte_level.h"

#include "engine/tokenizer/utf8.h"

namespace dms {

const ByteLevelMap& ByteLevelMap::Get() {
  static const ByteLevelMap kMap;
  return kMap;
}

ByteLevelMap::ByteLevelMap() {
  char_to_byte_.fill(-1);
  auto printable = [](int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  };
  int next = 0;
  for (int b = 0; b < 256; ++b) {
    char32_t c = printable(b) ? static_cast<char32_t>(b) : static_cast<char32_t>(256 + next++);
    byte_to_char_[b] = c;
    char_to_byte_[c] = static_cast<int16_t>(b);
  }
}

std::string ByteLevelMap::Encode(std::string_view bytes) const {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) utf8::Append(byte_to_char_[static_cast<uint8_t>(ch)], &out);
  return out;
}

void ByteLevelMap::AppendTokenBytes(std::string_view token, std::string* out) const {
  size_t start = out->size();
  for (size_t i = 0; i < token.size();) {
    size_t len = utf8::ValidSequenceLength(token, i);
    std::optional<uint8_t> b;
    if (len > 0) b = ByteFor(utf8::DecodeAt(token, i, &len));
    if (!b) {  // not a byte-level token: keep its text as is
      out->resize(start);
      out->append(token);
      return;
    }
    out->push_back(static_cast<char>(*b));
    i += len;
  }
}

}  // namespace dms
