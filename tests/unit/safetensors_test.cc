#include "distorch/safetensors.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "distorch/tensor_info.h"

namespace distorch {
namespace {

// A safetensors file in memory: length prefix, `header`, `data_bytes` zeros.
std::string FileWith(const std::string& header, size_t data_bytes) {
  std::string file(8, '\0');
  for (int i = 0; i < 8; ++i) {
    file[i] = static_cast<char>((uint64_t{header.size()} >> (8 * i)) & 0xFF);
  }
  return file + header + std::string(data_bytes, '\0');
}

// What a loader does: prefix first, then the header it announces.
absl::StatusOr<SafetensorsHeader> ParseFile(const std::string& file) {
  absl::StatusOr<uint64_t> n =
      ParseSafetensorsPrefix(absl::string_view(file).substr(0, 8), file.size());
  if (!n.ok()) return n.status();
  return ParseSafetensorsHeader(absl::string_view(file).substr(8, *n), *n, file.size());
}

std::string PrefixWithLength(uint64_t n) {
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i) prefix[i] = static_cast<char>(n >> (8 * i));
  return prefix;
}

TEST_CASE("DType names and sizes round-trip", "[safetensors]") {
  auto [name, size] = GENERATE(table<std::string, size_t>({{"F64", 8},
                                                           {"F32", 4},
                                                           {"F16", 2},
                                                           {"BF16", 2},
                                                           {"F8_E4M3", 1},
                                                           {"F8_E5M2", 1},
                                                           {"I8", 1},
                                                           {"U8", 1},
                                                           {"I16", 2},
                                                           {"I32", 4},
                                                           {"I64", 8},
                                                           {"BOOL", 1}}));
  CAPTURE(name);
  absl::StatusOr<DType> dtype = ParseDTypeName(name);
  REQUIRE(dtype.ok());
  CHECK(DTypeName(*dtype) == name);
  CHECK(DTypeSize(*dtype) == size);
}

TEST_CASE("ParseDTypeName refuses RAW and unknown names", "[safetensors]") {
  CHECK(DTypeName(DType::kRaw) == "RAW");
  CHECK(DTypeSize(DType::kRaw) == 0);
  const std::string known =
      " (known: F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I8, U8, I16, I32, "
      "I64, BOOL)";
  CHECK(ParseDTypeName("RAW").status().message() == "unknown dtype 'RAW'" + known);
  CHECK(ParseDTypeName("f32").status().message() == "unknown dtype 'f32'" + known);
  CHECK(ParseDTypeName(std::string(100, 'Q')).status().message() ==
        "unknown dtype '" + std::string(32, 'Q') + "...'" + known);
}

TEST_CASE("ParseSafetensorsHeader reads a valid header in file order", "[safetensors]") {
  // Keys sorted by name, as the safetensors library writes them; data in
  // model order (z.bias first). Padded with spaces to a multiple of 8.
  std::string header = R"({"__metadata__":{"format":"pt","note":"caf\u00e9"},)"
                       R"("a.weight":{"dtype":"F16","shape":[2,2],"data_offsets":[16,24]},)"
                       R"("z.bias":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const std::string file = FileWith(header, 24);
  absl::StatusOr<SafetensorsHeader> parsed = ParseFile(file);
  INFO(parsed.status().ToString());
  REQUIRE(parsed.ok());
  CHECK(parsed->header_bytes == header.size());
  CHECK(parsed->data_offset == 8 + header.size());
  REQUIRE(parsed->tensors.size() == 2);
  const TensorInfo& first = parsed->tensors[0];
  CHECK(first.name == "z.bias");
  CHECK(first.dtype == DType::kF32);
  CHECK(first.shape == std::vector<int64_t>{4});
  CHECK(first.file_offset == 8 + header.size());
  CHECK(first.nbytes == 16);
  const TensorInfo& second = parsed->tensors[1];
  CHECK(second.name == "a.weight");
  CHECK(second.dtype == DType::kF16);
  CHECK(second.shape == std::vector<int64_t>{2, 2});
  CHECK(second.file_offset == 8 + header.size() + 16);
  CHECK(second.nbytes == 8);
  REQUIRE(parsed->metadata.size() == 2);
  CHECK(parsed->metadata[0] == std::make_pair(std::string("format"), std::string("pt")));
  CHECK(parsed->metadata[1].second == "caf\xC3\xA9");
}

TEST_CASE("ParseSafetensorsHeader accepts the edge cases real files have", "[safetensors]") {
  SECTION("empty header") {
    absl::StatusOr<SafetensorsHeader> parsed = ParseFile(FileWith("{}", 0));
    REQUIRE(parsed.ok());
    CHECK(parsed->tensors.empty());
  }
  SECTION("null metadata, scalar, empty tensor, gap, unknown member") {
    const std::string header = R"({"__metadata__":null,)"
                               R"("s":{"dtype":"F32","shape":[],"data_offsets":[0,4]},)"
                               R"("e":{"dtype":"BF16","shape":[0,7],"data_offsets":[2,2]},)"
                               R"("g":{"dtype":"U8","shape":[3],"data_offsets":[8,11],"x":1}})";
    absl::StatusOr<SafetensorsHeader> parsed = ParseFile(FileWith(header, 11));
    INFO(parsed.status().ToString());
    REQUIRE(parsed.ok());
    REQUIRE(parsed->tensors.size() == 3);
    CHECK(parsed->tensors[0].name == "s");
    CHECK(parsed->tensors[0].shape.empty());
    CHECK(parsed->tensors[1].name == "e");  // empty, inside s's span: fine
    CHECK(parsed->tensors[1].nbytes == 0);
    CHECK(parsed->tensors[2].name == "g");
    CHECK(parsed->metadata.empty());
  }
  SECTION("a zero dimension makes a huge shape empty") {
    const std::string header = R"({"e":{"dtype":"F64","shape":[4294967296,4294967296,0],)"
                               R"("data_offsets":[0,0]}})";
    CHECK(ParseFile(FileWith(header, 0)).ok());
  }
}

TEST_CASE("ParseSafetensorsPrefix bounds the header length", "[safetensors]") {
  CHECK(*ParseSafetensorsPrefix(PrefixWithLength(2), 10) == 2);
  auto [prefix, file_size, code, want] =
      GENERATE(table<std::string, uint64_t, absl::StatusCode, std::string>({
          {"abcde", 5, absl::StatusCode::kInvalidArgument,
           "not a safetensors file: it needs an 8-byte header length, got 5 "
           "bytes"},
          {PrefixWithLength(0), 100, absl::StatusCode::kInvalidArgument,
           "safetensors header length is 0 bytes; even an empty header needs "
           "2 ('{}')"},
          {PrefixWithLength(uint64_t{1} << 63), ~uint64_t{0}, absl::StatusCode::kInvalidArgument,
           "safetensors header length is 9223372036854775808 bytes, over the "
           "limit of 104857600 (the file is corrupt or not a safetensors "
           "file)"},
          {PrefixWithLength(kMaxSafetensorsHeaderBytes + 1), ~uint64_t{0},
           absl::StatusCode::kInvalidArgument,
           "safetensors header length is 104857601 bytes, over the limit of "
           "104857600 (the file is corrupt or not a safetensors file)"},
          {PrefixWithLength(100), 50, absl::StatusCode::kOutOfRange,
           "safetensors header length is 100 bytes, past the end of the file "
           "(50 bytes): the file is truncated or not a safetensors file"},
          {PrefixWithLength(43), 50, absl::StatusCode::kOutOfRange,
           "safetensors header length is 43 bytes, past the end of the file "
           "(50 bytes): the file is truncated or not a safetensors file"},
      }));
  absl::StatusOr<uint64_t> n = ParseSafetensorsPrefix(prefix, file_size);
  REQUIRE_FALSE(n.ok());
  CHECK(n.status().code() == code);
  CHECK(n.status().message() == want);
}

TEST_CASE("ParseSafetensorsHeader checks its arguments agree", "[safetensors]") {
  CHECK(ParseSafetensorsHeader("{}", 3, 100).status().message() ==
        "safetensors header: got 2 bytes of JSON, but the header length says "
        "3");
  CHECK(ParseSafetensorsHeader("{}", 2, 9).status().code() == absl::StatusCode::kOutOfRange);
  const std::string big(kMaxSafetensorsHeaderBytes + 1, ' ');
  CHECK(ParseSafetensorsHeader(big, big.size(), ~uint64_t{0}).status().message() ==
        "safetensors header: header length 104857601 is over the limit of 104857600");
}

// Entry for tensor `name` with the given members.
std::string Entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":" + dtype + ",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

TEST_CASE("ParseSafetensorsHeader rejects hostile headers by name", "[safetensors]") {
  const std::string p = "safetensors header: ";
  auto [header, want] = GENERATE_REF(table<std::string, std::string>({
      {"[1]", p + "must be a JSON object, got array"},
      {R"({"w":)", p + "invalid JSON at byte 5: unexpected end of input, expected a value"},
      {"{}x", p + "invalid JSON at byte 2: unexpected data after the JSON "
                  "value"},
      {"{" + Entry("w", R"("F32")", "[1]", "[0,4]") + "," + Entry("w", R"("F32")", "[1]", "[4,8]") +
           "}",
       p + "invalid JSON at byte 54: duplicate key 'w'"},
      {R"({"w":{"dtype":"F32","shape":[[1]],"data_offsets":[0,4]}})",
       p + "invalid JSON at byte 29: nesting deeper than 3 levels"},
      {R"({"w":5})", p + "tensor 'w': entry must be an object, got integer"},
      {R"({"w":{"dtype":"F32","shape":[1]}})",
       p + "tensor 'w': missing 'data_offsets' (need dtype, shape and "
           "data_offsets)"},
      {"{" + Entry("w", "7", "[1]", "[0,4]") + "}",
       p + "tensor 'w': 'dtype' must be a string, got integer"},
      {"{" + Entry("w", R"("F4")", "[2]", "[0,1]") + "}",
       p + "tensor 'w': unknown dtype 'F4' (known: F64, F32, F16, BF16, "
           "F8_E4M3, F8_E5M2, I8, U8, I16, I32, I64, BOOL)"},
      {"{" + Entry("w", R"("F32")", "{}", "[0,4]") + "}",
       p + "tensor 'w': 'shape' must be an array, got object"},
      {"{" + Entry("w", R"("F32")", "[2.0]", "[0,8]") + "}",
       p + "tensor 'w': shape[0] must be an integer, got number"},
      {"{" + Entry("w", R"("F32")", "[2,-1]", "[0,8]") + "}",
       p + "tensor 'w': shape[1] is -1; dimensions must be >= 0"},
      {"{" + Entry("w", R"("F16")", "[2,3]", "[0,10]") + "}",
       p + "tensor 'w': shape [2, 3] x F16 (2 bytes) = 12 bytes, but "
           "data_offsets [0, 10] span 10"},
      {"{" + Entry("w", R"("F32")", "[4294967296,4294967296]", "[0,0]") + "}",
       p + "tensor 'w': shape [4294967296, 4294967296] has more elements "
           "than fit in 64 bits"},
      {"{" + Entry("w", R"("F32")", "[4611686018427387904,2]", "[0,0]") + "}",
       p + "tensor 'w': shape [4611686018427387904, 2] x F32 is more bytes "
           "than fit in 64 bits"},
      {"{" + Entry("w", R"("F32")", "[1]", "[0]") + "}",
       p + "tensor 'w': 'data_offsets' must be an array [begin, end]"},
      {"{" + Entry("w", R"("F32")", "[1]", "[-4,0]") + "}",
       p + "tensor 'w': 'data_offsets' must hold two non-negative integers"},
      {"{" + Entry("w", R"("F32")", "[1]", "[8,4]") + "}",
       p + "tensor 'w': data_offsets [8, 4] end before they begin"},
      {"{" + Entry("a", R"("F32")", "[2]", "[0,8]") + "," +
           Entry("b", R"("F32")", "[2]", "[4,12]") + "}",
       p + "tensors 'a' [0, 8) and 'b' [4, 12) overlap"},
      {"{" + Entry("big", R"("U8")", "[16]", "[16,32]") + "," +
           Entry("in", R"("U8")", "[4]", "[20,24]") + "}",
       p + "tensors 'big' [16, 32) and 'in' [20, 24) overlap"},
      {R"({"__metadata__":[]})", p + "__metadata__ must be an object of strings, got array"},
      {R"({"__metadata__":{"format":1}})",
       p + "__metadata__ 'format' must be a string, got integer"},
      {"{" + Entry(std::string(100, 'n'), R"("F33")", "[1]", "[0,4]") + "}",
       p + "tensor '" + std::string(64, 'n') +
           "...': unknown dtype 'F33' "
           "(known: F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I8, U8, I16, I32, "
           "I64, BOOL)"},
  }));
  CAPTURE(header);
  absl::StatusOr<SafetensorsHeader> parsed = ParseFile(FileWith(header, 64));
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(parsed.status().message() == want);
}

TEST_CASE("ParseSafetensorsHeader keeps spans inside the file", "[safetensors]") {
  const std::string header = "{" + Entry("a", R"("F32")", "[2]", "[0,8]") + "," +
                             Entry("b", R"("F32")", "[2]", "[8,16]") + "}";
  CHECK(ParseFile(FileWith(header, 16)).ok());
  absl::StatusOr<SafetensorsHeader> parsed = ParseFile(FileWith(header, 15));
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().code() == absl::StatusCode::kOutOfRange);
  CHECK(parsed.status().message() ==
        "safetensors header: tensor 'b': data_offsets [8, 16] run past the "
        "end of the file (the data section has 15 bytes)");
  // An offset near 2^63 must not wrap around when added to the data start.
  const std::string far =
      "{" + Entry("f", R"("U8")", "[1]", "[9223372036854775806,9223372036854775807]") + "}";
  parsed = ParseFile(FileWith(far, 16));
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().code() == absl::StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace distorch
