// json_lite is private to the core library, hence the relative include.
#include "../../daemon/core/json_lite.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <limits>
#include <string>

namespace distorch::json {
namespace {

Value MustParse(const std::string& text) {
  absl::StatusOr<Value> value = Parse(text);
  INFO(text << " -> " << value.status().ToString());
  REQUIRE(value.ok());
  return *std::move(value);
}

std::string ErrorOf(const std::string& text, const ParseOptions& options = {}) {
  absl::StatusOr<Value> value = Parse(text, options);
  INFO(text);
  REQUIRE_FALSE(value.ok());
  CHECK(value.status().code() == absl::StatusCode::kInvalidArgument);
  return std::string(value.status().message());
}

TEST_CASE("json::Parse reads every kind of value", "[json]") {
  Value v = MustParse(R"( {"a": null, "b": true, "c": false, "d": -12, "e": 1.5e3,)"
                      R"( "f": "x", "g": [1, [2]], "h": {}} )");
  REQUIRE(v.is_object());
  REQUIRE(v.object().size() == 8);
  CHECK(v.object()[0].first == "a");  // document order kept
  CHECK(v.Find("a")->is_null());
  CHECK(v.Find("b")->bool_value());
  CHECK_FALSE(v.Find("c")->bool_value());
  CHECK(v.Find("d")->int_value() == -12);
  CHECK(v.Find("e")->is_double());
  CHECK(v.Find("e")->double_value() == 1500.0);
  CHECK(v.Find("f")->string_value() == "x");
  CHECK(v.Find("g")->array().size() == 2);
  CHECK(v.Find("g")->array()[1].array()[0].int_value() == 2);
  CHECK(v.Find("h")->object().empty());
  CHECK(v.Find("zzz") == nullptr);
  CHECK(MustParse("[]").array().empty());
  CHECK(MustParse("\t\r\n 7 \n").int_value() == 7);
}

TEST_CASE("json::Parse keeps integers exact in int64", "[json]") {
  auto [text, want] = GENERATE(table<std::string, int64_t>({
      {"0", 0},
      {"-0", 0},
      {"9223372036854775807", std::numeric_limits<int64_t>::max()},
      {"-9223372036854775808", std::numeric_limits<int64_t>::min()},
      {"12345678901234", 12345678901234},
  }));
  CAPTURE(text);
  Value v = MustParse(text);
  REQUIRE(v.is_int());
  CHECK(v.int_value() == want);
}

TEST_CASE("json::Parse turns other numbers into doubles", "[json]") {
  Value big = MustParse("9223372036854775808");  // INT64_MAX + 1
  REQUIRE(big.is_double());
  CHECK(big.double_value() == 9223372036854775808.0);
  CHECK(MustParse("1.0").is_double());
  CHECK(MustParse("1e2").is_double());
  CHECK(MustParse("-2.5E-3").double_value() == -0.0025);
}

TEST_CASE("json::Parse decodes string escapes", "[json]") {
  auto [text, want] = GENERATE(table<std::string, std::string>({
      {R"("a\"b\\c\/d")", "a\"b\\c/d"},
      {R"("\b\f\n\r\t")", "\b\f\n\r\t"},
      {R"("\u0041\u00e9\u20AC")", "A\xC3\xA9\xE2\x82\xAC"},
      {R"("\ud83d\ude00")", "\xF0\x9F\x98\x80"},  // surrogate pair: U+1F600
      {"\"\xC3\xA9\xF0\x9F\x98\x80\"", "\xC3\xA9\xF0\x9F\x98\x80"},
      {R"("\u0000")", std::string(1, '\0')},
  }));
  CAPTURE(text);
  CHECK(MustParse(text).string_value() == want);
}

TEST_CASE("json::Parse rejects malformed input with the byte offset", "[json]") {
  auto [text, want] = GENERATE(table<std::string, std::string>({
      {"", "invalid JSON at byte 0: unexpected end of input, expected a value"},
      {"{} x", "invalid JSON at byte 3: unexpected data after the JSON value"},
      {"{}{}", "invalid JSON at byte 2: unexpected data after the JSON value"},
      {"{\"a\" 1}", "invalid JSON at byte 5: expected ':' after object key"},
      {"{\"a\":1,}", "invalid JSON at byte 7: expected a string key in object"},
      {"{a:1}", "invalid JSON at byte 1: expected a string key in object"},
      {"[1 2]",
       "invalid JSON at byte 3: expected ',' or ']' after array "
       "element"},
      {"[1,]",
       "invalid JSON at byte 3: unexpected character ']', expected a "
       "value"},
      {"{\"a\":1", "invalid JSON at byte 6: unexpected end of input in object"},
      {"tru", "invalid JSON at byte 0: invalid literal, expected 'true'"},
      {"nul", "invalid JSON at byte 0: invalid literal, expected 'null'"},
      {"01", "invalid JSON at byte 0: invalid number: leading zero"},
      {"-", "invalid JSON at byte 0: invalid number: expected a digit"},
      {"1.",
       "invalid JSON at byte 0: invalid number: expected a digit after "
       "'.'"},
      {"1e+",
       "invalid JSON at byte 0: invalid number: expected a digit in "
       "exponent"},
      {"+1",
       "invalid JSON at byte 0: unexpected character '+', expected a "
       "value"},
      {"1e999", "invalid JSON at byte 0: number '1e999' is out of range"},
      {"NaN",
       "invalid JSON at byte 0: unexpected character 'N', expected a "
       "value"},
      {"\"abc", "invalid JSON at byte 0: unterminated string"},
      {"\"a\nb\"",
       "invalid JSON at byte 2: unescaped control character in "
       "string"},
      {R"("\x")", "invalid JSON at byte 1: invalid escape '\\x'"},
      {R"("\u12G4")",
       "invalid JSON at byte 5: invalid hex digit in \\u "
       "escape"},
      {R"("\u12")", "invalid JSON at byte 5: invalid hex digit in \\u escape"},
      {R"("\ud800")",
       "invalid JSON at byte 1: high surrogate not followed by "
       "a low surrogate"},
      {R"("\ud800\u0041")",
       "invalid JSON at byte 1: high surrogate not "
       "followed by a low surrogate"},
      {R"("\udc00")",
       "invalid JSON at byte 1: lone low surrogate in \\u "
       "escape"},
      {"\"\xC0\xAF\"", "invalid JSON at byte 1: invalid UTF-8 in string"},
      {"\"\xE0\x80\xAF\"", "invalid JSON at byte 1: invalid UTF-8 in string"},
      {"\"\xED\xA0\x80\"", "invalid JSON at byte 1: invalid UTF-8 in string"},
      {"\"\xF4\x90\x80\x80\"",
       "invalid JSON at byte 1: invalid UTF-8 in "
       "string"},
      {"\"\xC3\"", "invalid JSON at byte 1: invalid UTF-8 in string"},
      {"\"\xFF\"", "invalid JSON at byte 1: invalid UTF-8 in string"},
      {"\x01",
       "invalid JSON at byte 0: unexpected character '\\x01', "
       "expected a value"},
  }));
  CAPTURE(text);
  CHECK(ErrorOf(text) == want);
}

TEST_CASE("json::Parse reports duplicate keys", "[json]") {
  CHECK(ErrorOf(R"({"a":1,"b":2,"a":3})") == "invalid JSON at byte 13: duplicate key 'a'");
  // Nested objects are checked too; the same key in siblings is fine.
  CHECK(ErrorOf(R"({"x":{"k":1,"k":2}})") == "invalid JSON at byte 12: duplicate key 'k'");
  CHECK(MustParse(R"({"x":{"k":1},"y":{"k":2}})").is_object());
  // Escapes are decoded before comparing.
  CHECK(ErrorOf(R"({"A":1,"\u0041":2})") == "invalid JSON at byte 7: duplicate key 'A'");
}

TEST_CASE("json::Parse bounds depth and value count", "[json]") {
  ParseOptions options;
  options.max_depth = 3;
  CHECK(Parse("[[[1]]]", options).ok());
  CHECK(ErrorOf("[[[[1]]]]", options) == "invalid JSON at byte 3: nesting deeper than 3 levels");
  // The default depth stops a stack-smashing document quickly.
  std::string deep(100000, '[');
  CHECK(ErrorOf(deep) == "invalid JSON at byte 64: nesting deeper than 64 levels");

  options = ParseOptions();
  options.max_values = 4;
  CHECK(Parse("[1,2,3]", options).ok());
  CHECK(ErrorOf("[1,2,3,4]", options) == "invalid JSON at byte 7: more than 4 values (limit)");
}

TEST_CASE("json::Shorten keeps error messages short and printable", "[json]") {
  CHECK(Shorten("abc") == "abc");
  CHECK(Shorten(std::string(100, 'x'), 4) == "xxxx...");
  CHECK(Shorten("a\nb\x01") == "a\\nb\\x01");
}

}  // namespace
}  // namespace distorch::json
