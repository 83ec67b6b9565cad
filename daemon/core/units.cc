#include "distorch/units.h"

#include <cstdint>
#include <iterator>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace distorch {
namespace {

// gcc and clang both have it; 20 + 20 digits times a 2^40 multiplier need
// about 110 bits, so every product in ScaleDecimal is exact.
using uint128 = unsigned __int128;

constexpr char kUnitHelp[] = "use b, kb, mb, gb or tb";
constexpr char kSizeHelp[] = "give a number with an optional unit, e.g. 2.5gb or 512mib";

uint128 Pow10(int n) {
  uint128 p = 1;
  for (int i = 0; i < n; ++i) p *= 10;
  return p;
}

uint128 DigitsValue(absl::string_view digits) {
  uint128 v = 0;
  for (char c : digits) v = v * 10 + static_cast<unsigned>(c - '0');
  return v;
}

bool AllDigits(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

absl::Status CheckDecimal(absl::string_view number) {
  if (number.empty()) return absl::InvalidArgumentError("missing number");
  size_t dot = number.find('.');
  absl::string_view whole = number.substr(0, dot);
  absl::string_view frac =
      dot == absl::string_view::npos ? absl::string_view() : number.substr(dot + 1);
  if (!AllDigits(whole) || !AllDigits(frac) || (whole.empty() && frac.empty())) {
    return absl::InvalidArgumentError("not a number (write digits with an optional '.', e.g. 2.5)");
  }
  if (whole.size() > kMaxDecimalDigits || frac.size() > kMaxDecimalDigits) {
    return absl::InvalidArgumentError(
        absl::StrCat("too many digits (at most ", kMaxDecimalDigits, " before and after the '.')"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> UnitMultiplier(absl::string_view unit) {
  std::string u = absl::AsciiStrToLower(unit);
  if (u.empty() || u == "b") return 1;
  // "k", "kb" and "kib" all mean 1024: MultiGPU read its sizes as binary
  // multiples, and so must we, or the same string would place less here.
  static constexpr struct {
    char letter;
    uint64_t multiple;
  } kUnits[] = {{'k', kKiB}, {'m', kMiB}, {'g', kGiB}, {'t', kTiB}};
  for (const auto& entry : kUnits) {
    if (u[0] != entry.letter) continue;
    absl::string_view tail = absl::string_view(u).substr(1);
    if (tail.empty() || tail == "b" || tail == "ib") return entry.multiple;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown unit '", absl::CHexEscape(unit), "' (", kUnitHelp, ")"));
}

absl::StatusOr<uint64_t> ScaleDecimal(absl::string_view number, uint64_t multiplier) {
  if (absl::Status ok = CheckDecimal(number); !ok.ok()) return ok;
  size_t dot = number.find('.');
  absl::string_view whole = number.substr(0, dot);
  absl::string_view frac =
      dot == absl::string_view::npos ? absl::string_view() : number.substr(dot + 1);
  uint128 value = DigitsValue(whole) * multiplier +
                  DigitsValue(frac) * multiplier / Pow10(static_cast<int>(frac.size()));
  if (value > std::numeric_limits<uint64_t>::max()) {
    return absl::InvalidArgumentError("too large (the limit is 16 EiB)");
  }
  return static_cast<uint64_t>(value);
}

absl::StatusOr<Quantity> ParseQuantity(absl::string_view text) {
  absl::string_view trimmed = absl::StripAsciiWhitespace(text);
  if (!trimmed.empty() && trimmed[0] == '-') {
    return absl::InvalidArgumentError("negative value (values are 0 or more)");
  }
  size_t split = trimmed.find_first_not_of("0123456789.");
  if (split == absl::string_view::npos) split = trimmed.size();
  Quantity q;
  q.number = trimmed.substr(0, split);
  absl::string_view suffix = absl::StripLeadingAsciiWhitespace(trimmed.substr(split));
  bool word = true;
  for (char c : suffix) {
    if (!absl::ascii_isalpha(static_cast<unsigned char>(c))) word = false;
  }
  if (q.number.empty() || !(word || suffix == "%")) {
    return absl::InvalidArgumentError(
        "not a value (give a size like 2.5gb, a "
        "percentage like 25%, or a plain "
        "number like 0.5)");
  }
  if (absl::Status ok = CheckDecimal(q.number); !ok.ok()) return ok;
  if (suffix.empty() || suffix == "%") {
    q.kind = suffix.empty() ? Quantity::Kind::kPlain : Quantity::Kind::kPercent;
    // CheckDecimal's grammar is a subset of what SimpleAtod reads.
    if (!absl::SimpleAtod(q.number, &q.value)) {
      return absl::InternalError("a checked decimal did not convert");
    }
    return q;
  }
  absl::StatusOr<uint64_t> multiple = UnitMultiplier(suffix);
  if (!multiple.ok()) return multiple.status();
  absl::StatusOr<uint64_t> bytes = ScaleDecimal(q.number, *multiple);
  if (!bytes.ok()) return bytes.status();
  q.kind = Quantity::Kind::kSize;
  q.bytes = *bytes;
  return q;
}

absl::StatusOr<uint64_t> ParseByteSize(absl::string_view text) {
  std::string quoted = absl::StrCat("'", absl::CHexEscape(text), "'");
  if (absl::StripAsciiWhitespace(text).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(quoted, ": empty size (", kSizeHelp, ")"));
  }
  absl::StatusOr<Quantity> q = ParseQuantity(text);
  if (!q.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(quoted, ": ", q.status().message()));
  }
  switch (q->kind) {
    case Quantity::Kind::kSize:
      return q->bytes;
    case Quantity::Kind::kPlain: {  // a bare number is bytes
      absl::StatusOr<uint64_t> bytes = ScaleDecimal(q->number, 1);
      if (!bytes.ok()) {
        return absl::InvalidArgumentError(absl::StrCat(quoted, ": ", bytes.status().message()));
      }
      return *bytes;
    }
    case Quantity::Kind::kPercent:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(quoted, ": a percentage is not a size (", kSizeHelp, ")"));
}

std::string FormatDecimal(double value) {
  // Input had at most kMaxDecimalDigits decimals, so one of these precisions
  // prints a decimal that lies within half an ulp of `value` and reads back.
  for (int precision = 0; precision <= kMaxDecimalDigits; ++precision) {
    std::string text = absl::StrFormat("%.*f", precision, value);
    double back = 0;
    if (absl::SimpleAtod(text, &back) && back == value) return text;
  }
  return absl::StrFormat("%.*f", kMaxDecimalDigits, value);
}

std::string FormatScaledDecimal(uint64_t value, uint64_t multiplier) {
  if (multiplier <= 1) return absl::StrCat(value);
  uint64_t whole = value / multiplier;
  uint128 rem = value % multiplier;
  if (rem == 0) return absl::StrCat(whole);
  // The smallest fraction f / 10^digits with rem <= f*multiplier/10^digits <
  // rem+1. 20 digits always suffice: 10^-20 * multiplier < 1 for any 64-bit
  // multiplier.
  uint128 scale = 1;
  for (int digits = 1; digits <= kMaxDecimalDigits; ++digits) {
    scale *= 10;
    uint128 frac = (rem * scale + multiplier - 1) / multiplier;  // ceiling
    if (frac * multiplier < (rem + 1) * scale) {
      std::string frac_text = absl::StrCat(static_cast<uint64_t>(frac));
      return absl::StrCat(whole, ".", std::string(digits - frac_text.size(), '0'), frac_text);
    }
  }
  return absl::StrCat(whole);  // unreachable, see above
}

std::string FormatBytes(uint64_t bytes) {
  if (bytes < kKiB) return absl::StrCat(bytes, " B");
  static constexpr const char* kNames[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int unit = 0;
  double value = static_cast<double>(bytes) / kKiB;
  // Step up while the value would print as 1024.00 or more, so 1048575 bytes
  // reads "1.00 MiB", not "1024.00 KiB".
  while (value >= 1023.995 && unit + 1 < static_cast<int>(std::size(kNames))) {
    value /= 1024;
    ++unit;
  }
  return absl::StrFormat("%.2f %s", value, kNames[unit]);
}

}  // namespace distorch
