// Counter-based random numbers: value i of a stream is a pure function of
// (key, i), so any chunk of a tensor can be generated independently, by any
// thread, in any order, and the bytes come out the same (make-model
// determinism). SplitMix64's finaliser is the mixing function.
#pragma once

#include <cstdint>
#include <string_view>

namespace dms::rng {

inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// FNV-1a: a stable hash of a tensor name, independent of std::hash.
inline uint64_t HashName(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) {
    h ^= static_cast<uint8_t>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

// The key of the stream named `name` under `seed`.
inline uint64_t StreamKey(uint64_t seed, std::string_view name) {
  return Mix64(Mix64(seed) ^ HashName(name));
}

inline uint64_t Bits(uint64_t key, uint64_t i) { return Mix64(key + i * 0x9e3779b97f4a7c15ull); }

// Approximately standard normal: Irwin-Hall sum of four 16-bit uniforms,
// centred and scaled to unit variance (bounded by +-3.46; cheap, no log/cos).
inline float Normal(uint64_t key, uint64_t i) {
  const uint64_t h = Bits(key, i);
  const uint32_t s = static_cast<uint32_t>((h & 0xffff) + ((h >> 16) & 0xffff) +
                                           ((h >> 32) & 0xffff) + (h >> 48));
  return (static_cast<float>(s) * (1.0f / 65535.0f) - 2.0f) * 1.7320508f;
}

}  // namespace dms::rng
