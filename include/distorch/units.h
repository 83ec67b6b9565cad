// Byte sizes as users write them ("2.5gb", "3G", "512 MiB") and as we print them.
#ifndef DISTORCH_UNITS_H_
#define DISTORCH_UNITS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace distorch {

inline constexpr uint64_t kKiB = 1024ULL;
inline constexpr uint64_t kMiB = 1024ULL * kKiB;
inline constexpr uint64_t kGiB = 1024ULL * kMiB;
inline constexpr uint64_t kTiB = 1024ULL * kGiB;

// Parses a size: a non-negative decimal number, optional whitespace, and an
// optional unit, case-insensitive: b, k/kb/kib, m/mb/mib, g/gb/gib, t/tb/tib.
// All multiples are binary (1 kb = 1024 b), as ComfyUI-MultiGPU reads them.
// A bare number is bytes. Fractions round down to whole bytes.
// Errors (InvalidArgument) name the text and the fix:
//   "'2x': unknown unit 'x' (use b, kb, mb, gb or tb)".
absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text);

// Human form with two decimals in the largest fitting binary unit:
// 0 -> "0 B", 1536 -> "1.50 KiB", 2684354560 -> "2.50 GiB".
std::string FormatBytes(uint64_t bytes);

}  // namespace distorch

#endif  // DISTORCH_UNITS_H_
