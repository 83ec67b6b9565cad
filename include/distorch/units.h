// Byte sizes as users write them ("2.5gb", "3G", "512 MiB") and as we print them.
#ifndef DISTORCH_UNITS_H_
#define DISTORCH_UNITS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
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

// Building blocks shared with the allocation parser (alloc_spec.cc). Their
// errors describe the problem without quoting the input, so each caller can
// name the offending token its own way ("allocation token '2x' at position 7:
// unknown unit 'x' ...").

// The most digits a decimal may have on each side of its '.': generous for
// any real size, and small enough that ScaleDecimal's arithmetic is exact.
inline constexpr int kMaxDecimalDigits = 20;

// Checks that `number` is a plain non-negative decimal as users write it:
// "2", "2.5", "2.", ".5"; at most kMaxDecimalDigits digits before and after
// the '.'. No sign, exponent, whitespace, "inf" or "nan".
absl::Status CheckDecimal(absl::string_view number);

// The binary multiple a unit stands for, case-insensitive: "" and "b" -> 1,
// "k"/"kb"/"kib" -> kKiB, ... "t"/"tb"/"tib" -> kTiB.
absl::StatusOr<uint64_t> UnitMultiplier(absl::string_view unit);

// floor(number * multiplier), computed exactly (no floating point), for a
// `number` that passes CheckDecimal and a multiplier of at most kTiB (a unit).
// Fails if the result does not fit 64 bits.
absl::StatusOr<uint64_t> ScaleDecimal(absl::string_view number, uint64_t multiplier);

// A number as users write it, with what follows it: "2.5gb" is a size,
// "25%" a percentage, "0.8" a plain number. What a plain number means is the
// caller's call: bytes for ParseByteSize, a fraction of the device's memory in
// an allocation string.
struct Quantity {
  enum class Kind { kSize, kPercent, kPlain };
  Kind kind = Kind::kPlain;
  absl::string_view number;  // the digits as written ("2.5"); views the input
  uint64_t bytes = 0;        // kSize: floor(number * unit), exact
  double value = 0;          // kPercent, kPlain: the number
};

// Parses "NUMBER[ ][UNIT|%]", whitespace around it allowed. Errors: negative,
// not a number, too many digits, unknown unit, too large.
absl::StatusOr<Quantity> ParseQuantity(absl::string_view text);

// The shortest plain decimal ("0.8", "25", never an exponent) that reads back
// as exactly `value`, for a value that came from text passing CheckDecimal.
std::string FormatDecimal(double value);

// The inverse of ScaleDecimal: the shortest decimal x with
// floor(x * multiplier) == value, e.g. (8697308774, kGiB) -> "8.1".
// `multiplier` is at most kTiB.
std::string FormatScaledDecimal(uint64_t value, uint64_t multiplier);

// Human form with two decimals in the largest fitting binary unit:
// 0 -> "0 B", 1536 -> "1.50 KiB", 2684354560 -> "2.50 GiB".
std::string FormatBytes(uint64_t bytes);

}  // namespace distorch

#endif  // DISTORCH_UNITS_H_
