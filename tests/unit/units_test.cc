// Byte sizes as users write them, and the decimal helpers the allocation
// parser shares.
#include "distorch/units.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace distorch {
namespace {

TEST_CASE("ParseByteSize reads sizes with binary units", "[units]") {
  auto [text, want] = GENERATE(table<std::string, uint64_t>({
      {"0", 0},
      {"512", 512},  // a bare number is bytes
      {"1b", 1},
      {"1B", 1},
      {"1k", kKiB},
      {"1kb", kKiB},
      {"1KiB", kKiB},
      {"512 MiB", 512 * kMiB},
      {"100mib", 100 * kMiB},
      {"2.5gb", 2684354560},
      {"3G", 3 * kGiB},
      {" 2 gb ", 2 * kGiB},
      {"1t", kTiB},
      {"1TB", kTiB},
      {"1tib", kTiB},
      {"0.5k", 512},
      {".5kb", 512},
      {"5.", 5},
      {"1.9b", 1},           // fractions of a byte round down
      {"0.1gb", 107374182},  // floor(0.1 * 2^30), computed exactly
      {"16777215tb", 16777215 * kTiB},
      {"18446744073709551615", std::numeric_limits<uint64_t>::max()},
  }));
  CAPTURE(text);
  absl::StatusOr<uint64_t> bytes = ParseByteSize(text);
  INFO(bytes.status().ToString());
  REQUIRE(bytes.ok());
  CHECK(*bytes == want);
}

TEST_CASE("ParseByteSize names the text and the fix", "[units]") {
  auto [text, message] = GENERATE(table<std::string, std::string>({
      {"2x", "'2x': unknown unit 'x' (use b, kb, mb, gb or tb)"},
      {"2 kbit", "'2 kbit': unknown unit 'kbit' (use b, kb, mb, gb or tb)"},
      {"",
       "'': empty size (give a number with an optional unit, e.g. 2.5gb "
       "or 512mib)"},
      {"-1gb", "'-1gb': negative value (values are 0 or more)"},
      {"abc",
       "'abc': not a value (give a size like 2.5gb, a percentage like "
       "25%, or a plain number like 0.5)"},
      {"1e3",
       "'1e3': not a value (give a size like 2.5gb, a percentage like "
       "25%, or a plain number like 0.5)"},
      {"1.2.3gb",
       "'1.2.3gb': not a number (write digits with an optional "
       "'.', e.g. 2.5)"},
      {"16777216tb", "'16777216tb': too large (the limit is 16 EiB)"},
      {"18446744073709551616",
       "'18446744073709551616': too large (the limit "
       "is 16 EiB)"},
      {"123456789012345678901",
       "'123456789012345678901': too many digits (at "
       "most 20 before and after the '.')"},
      {"25%",
       "'25%': a percentage is not a size (give a number with an "
       "optional unit, e.g. 2.5gb or 512mib)"},
  }));
  CAPTURE(text);
  absl::StatusOr<uint64_t> bytes = ParseByteSize(text);
  REQUIRE_FALSE(bytes.ok());
  CHECK(bytes.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(bytes.status().message()) == message);
}

TEST_CASE("CheckDecimal accepts plain decimals only", "[units]") {
  auto good = GENERATE(as<std::string>{}, "0", "2", "2.5", "2.", ".5", "00012",
                       "12345678901234567890.12345678901234567890");
  CAPTURE(good);
  CHECK(CheckDecimal(good).ok());
}

TEST_CASE("CheckDecimal rejects signs, exponents and junk", "[units]") {
  auto bad = GENERATE(as<std::string>{}, "", ".", "-1", "+1", "1e3", "inf", "nan", "1..2", " 1",
                      "1 ", "0x1f", "123456789012345678901", "0.123456789012345678901");
  CAPTURE(bad);
  CHECK(absl::IsInvalidArgument(CheckDecimal(bad)));
}

TEST_CASE("ParseQuantity classifies by what follows the number", "[units]") {
  absl::StatusOr<Quantity> size = ParseQuantity("2.5 GB");
  REQUIRE(size.ok());
  CHECK(size->kind == Quantity::Kind::kSize);
  CHECK(size->bytes == 2684354560);
  CHECK(size->number == "2.5");

  absl::StatusOr<Quantity> percent = ParseQuantity("12.5 %");
  REQUIRE(percent.ok());
  CHECK(percent->kind == Quantity::Kind::kPercent);
  CHECK(percent->value == 12.5);

  absl::StatusOr<Quantity> plain = ParseQuantity("0.8");
  REQUIRE(plain.ok());
  CHECK(plain->kind == Quantity::Kind::kPlain);
  CHECK(plain->value == 0.8);
}

TEST_CASE("FormatBytes prints two decimals in the largest unit", "[units]") {
  auto [bytes, want] = GENERATE(table<uint64_t, std::string>({
      {0, "0 B"},
      {1023, "1023 B"},
      {1024, "1.00 KiB"},
      {1536, "1.50 KiB"},
      {2684354560, "2.50 GiB"},
      {1048575, "1.00 MiB"},  // not "1024.00 KiB"
      {kTiB, "1.00 TiB"},
      {1024 * kTiB, "1.00 PiB"},
      {std::numeric_limits<uint64_t>::max(), "16.00 EiB"},
  }));
  CHECK(FormatBytes(bytes) == want);
}

TEST_CASE("FormatDecimal prints the shortest exact plain decimal", "[units]") {
  auto [value, want] = GENERATE(table<double, std::string>({
      {0, "0"},
      {1, "1"},
      {25, "25"},
      {0.8, "0.8"},
      {12.5, "12.5"},
      {0.0207, "0.0207"},
      {1e-20, "0.00000000000000000001"},
  }));
  CHECK(FormatDecimal(value) == want);
}

TEST_CASE("FormatScaledDecimal inverts ScaleDecimal", "[units]") {
  CHECK(FormatScaledDecimal(8697308774, kGiB) == "8.1");
  CHECK(FormatScaledDecimal(8 * kGiB, kGiB) == "8");
  CHECK(FormatScaledDecimal(1536, kKiB) == "1.5");
  CHECK(FormatScaledDecimal(123, 1) == "123");
  auto multiplier = GENERATE(kKiB, kMiB, kGiB, kTiB);
  auto value =
      GENERATE(uint64_t{0}, uint64_t{1}, uint64_t{999}, uint64_t{1234567891}, uint64_t{8697308774},
               std::numeric_limits<uint64_t>::max() - 1, std::numeric_limits<uint64_t>::max());
  CAPTURE(value, multiplier);
  std::string text = FormatScaledDecimal(value, multiplier);
  CAPTURE(text);
  absl::StatusOr<uint64_t> back = ScaleDecimal(text, multiplier);
  REQUIRE(back.ok());
  CHECK(*back == value);
}

}  // namespace
}  // namespace distorch
