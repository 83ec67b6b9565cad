// Deterministic test bytes, shared by the GPU tests and the IPC child so both
// sides agree on what an arena must hold without sending the bytes. Only the
// C++ standard library: the child links nothing but cudart.
#ifndef DISTORCH_TESTS_GPU_PATTERN_H_
#define DISTORCH_TESTS_GPU_PATTERN_H_

#include <cstdint>
#include <string>
#include <vector>

namespace distorch::testing {

// The byte at `index` of the stream named `seed` (splitmix64 of both).
inline uint8_t PatternByte(uint64_t seed, uint64_t index) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + (index >> 3) + 1;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  return static_cast<uint8_t>(z >> (8 * (index & 7)));
}

// Bytes [begin, begin + n) of stream `seed`.
inline std::vector<uint8_t> Pattern(uint64_t seed, uint64_t n, uint64_t begin = 0) {
  std::vector<uint8_t> out(n);
  for (uint64_t i = 0; i < n; ++i) out[i] = PatternByte(seed, begin + i);
  return out;
}

inline std::string ToHex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

// Empty on malformed input.
inline std::string FromHex(const std::string& hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (hex.size() % 2 != 0) return {};
  std::string out;
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return {};
    out.push_back(static_cast<char>(hi << 4 | lo));
  }
  return out;
}

}  // namespace distorch::testing

#endif  // DISTORCH_TESTS_GPU_PATTERN_H_
