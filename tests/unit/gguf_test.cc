#include "distorch/gguf.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"

namespace distorch {
namespace {

// Builds GGUF bytes in memory, field by field, little-endian.
class GgufBytes {
 public:
  GgufBytes& Raw(const std::string& bytes) {
    out_ += bytes;
    return *this;
  }
  GgufBytes& U8(uint8_t v) { return Int(v, 1); }
  GgufBytes& U32(uint32_t v) { return Int(v, 4); }
  GgufBytes& U64(uint64_t v) { return Int(v, 8); }
  GgufBytes& Str(const std::string& s) { return U64(s.size()).Raw(s); }
  GgufBytes& Header(uint64_t tensors, uint64_t kvs, uint32_t version = 3) {
    return Raw("GGUF").U32(version).U64(tensors).U64(kvs);
  }
  // Key plus value type; the caller appends the value.
  GgufBytes& Key(const std::string& key, GgufValueType type) {
    return Str(key).U32(static_cast<uint32_t>(type));
  }
  GgufBytes& KvString(const std::string& key, const std::string& value) {
    return Key(key, GgufValueType::kString).Str(value);
  }
  GgufBytes& KvU32(const std::string& key, uint32_t value) {
    return Key(key, GgufValueType::kUint32).U32(value);
  }
  GgufBytes& Tensor(const std::string& name, std::vector<uint64_t> dims, uint32_t type,
                    uint64_t offset) {
    Str(name).U32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) U64(d);
    return U32(type).U64(offset);
  }
  // Zero padding to `alignment`, then `data_bytes` of tensor data.
  GgufBytes& Data(uint64_t data_bytes, uint64_t alignment = 32) {
    out_.append((alignment - out_.size() % alignment) % alignment, '\0');
    out_.append(data_bytes, '\x5A');
    return *this;
  }
  const std::string& str() const { return out_; }

 private:
  GgufBytes& Int(uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out_.push_back(static_cast<char>(v >> (8 * i)));
    return *this;
  }
  std::string out_;
};

constexpr uint32_t kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8;

// Four tensors, infos deliberately not in data order.
std::string ValidFile(uint32_t version = 3) {
  GgufBytes b;
  b.Header(4, 10, version)
      .KvString("general.architecture", "flux")
      .KvString("general.name", "tiny")
      .KvU32("general.quantization_version", 2)
      .Key("t.u8", GgufValueType::kUint8)
      .U8(7)
      .Key("t.i32", GgufValueType::kInt32)
      .U32(static_cast<uint32_t>(-5))
      .Key("t.f32", GgufValueType::kFloat32)
      .U32(0x3FC00000)  // 1.5f
      .Key("t.bool", GgufValueType::kBool)
      .U8(1)
      .Key("t.i64", GgufValueType::kInt64)
      .U64(static_cast<uint64_t>(-9))
      .Key("t.tokens", GgufValueType::kArray)
      .U32(static_cast<uint32_t>(GgufValueType::kString))
      .U64(3)
      .Str("a")
      .Str("bc")
      .Str("")
      .Key("t.nested", GgufValueType::kArray)
      .U32(static_cast<uint32_t>(GgufValueType::kArray))
      .U64(2)
      .U32(static_cast<uint32_t>(GgufValueType::kUint16))
      .U64(2)
      .U32(0)
      .U32(static_cast<uint32_t>(GgufValueType::kBool))
      .U64(1)
      .U8(0);
  b.Tensor("q", {64, 2}, kQ8_0, 32)    // 4 blocks x 34 = 136 bytes
      .Tensor("a", {4, 2}, kF32, 0)    // 32 bytes
      .Tensor("h", {3}, kF16, 224)     // 6 bytes
      .Tensor("k", {32}, kQ4_0, 192);  // 1 block = 18 bytes
  return b.Data(230).str();
}

absl::StatusOr<GgufHeader> ParseWhole(const std::string& file) {
  return ParseGgufHeader(file, file.size());
}

TEST_CASE("FindGgmlType knows block sizes from ggml", "[gguf]") {
  auto [id, name, block, bytes] = GENERATE(table<uint32_t, std::string, uint32_t, uint32_t>({
      {0, "F32", 1, 4},       {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},
      {3, "Q4_1", 32, 20},    {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},
      {8, "Q8_0", 32, 34},    {9, "Q8_1", 32, 36},      {10, "Q2_K", 256, 84},
      {11, "Q3_K", 256, 110}, {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
      {14, "Q6_K", 256, 210}, {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66},
      {20, "IQ4_NL", 32, 18}, {23, "IQ4_XS", 256, 136}, {29, "IQ1_M", 256, 56},
      {30, "BF16", 1, 2},     {39, "MXFP4", 32, 17},
  }));
  const GgmlType* type = FindGgmlType(id);
  REQUIRE(type != nullptr);
  CHECK(type->name == name);
  CHECK(type->block_size == block);
  CHECK(type->type_size == bytes);
  for (uint32_t removed : {4u, 5u, 31u, 33u, 36u, 38u, 40u, 1000u}) {
    CHECK(FindGgmlType(removed) == nullptr);
  }
}

TEST_CASE("ParseGgufHeader reads a valid v3 file", "[gguf]") {
  const std::string file = ValidFile();
  absl::StatusOr<GgufHeader> h = ParseWhole(file);
  INFO(h.status().ToString());
  REQUIRE(h.ok());
  CHECK(h->version == 3);
  CHECK(h->architecture == "flux");
  CHECK(h->alignment == 32);
  CHECK(h->data_offset % 32 == 0);
  CHECK(h->data_offset >= h->header_bytes);
  CHECK(h->data_offset + 230 == file.size());
  REQUIRE(h->metadata.size() == 10);
  CHECK(h->metadata[1].string_value == "tiny");
  CHECK(h->metadata[3].uint_value == 7);
  CHECK(h->metadata[4].int_value == -5);
  CHECK(h->metadata[5].float_value == 1.5);
  CHECK(h->metadata[6].uint_value == 1);
  CHECK(h->metadata[7].int_value == -9);
  CHECK(h->metadata[8].array_type == GgufValueType::kString);
  CHECK(h->metadata[8].array_length == 3);
  CHECK(h->metadata[9].array_type == GgufValueType::kArray);

  REQUIRE(h->tensors.size() == 4);
  std::vector<std::string> order;
  for (const GgufTensor& t : h->tensors) order.push_back(t.info.name);
  CHECK(order == std::vector<std::string>{"a", "q", "k", "h"});
  const GgufTensor& a = h->tensors[0];
  CHECK(a.info.dtype == DType::kF32);
  CHECK(a.info.shape == std::vector<int64_t>{2, 4});  // PyTorch order
  CHECK(a.ggml_dims == std::vector<uint64_t>{4, 2});
  CHECK(a.info.nbytes == 32);
  CHECK(a.info.file_offset == h->data_offset);
  const GgufTensor& q = h->tensors[1];
  CHECK(q.info.dtype == DType::kRaw);
  CHECK(q.ggml_type == kQ8_0);
  CHECK(q.ggml_type_name == "Q8_0");
  CHECK(q.info.nbytes == 136);
  CHECK(q.relative_offset == 32);
  CHECK(q.info.file_offset == h->data_offset + 32);
  CHECK(h->tensors[2].info.nbytes == 18);
  CHECK(h->tensors[2].ggml_type_name == "Q4_0");
  CHECK(h->tensors[3].info.dtype == DType::kF16);
  CHECK(h->tensors[3].info.nbytes == 6);
}

TEST_CASE("ParseGgufHeader sizes quantised tensors by whole blocks", "[gguf]") {
  // nbytes = rows x (row / block) x bytes per block: what the broker copies
  // and ComfyUI-GGUF views as uint8 (*leading dims, bytes per row).
  auto [type, dims, name, nbytes] =
      GENERATE(table<uint32_t, std::vector<uint64_t>, std::string, uint64_t>({
          {8, {1280, 320}, "Q8_0", 435200},  // 320 rows x 40 blocks x 34
          {2, {64, 3, 2}, "Q4_0", 216},      // 6 rows x 2 blocks x 18
          {12, {512, 3}, "Q4_K", 864},       // 3 rows x 2 blocks x 144
          {13, {256, 2, 2}, "Q5_K", 704},
          {14, {256, 4}, "Q6_K", 840},
          {10, {256}, "Q2_K", 84},
          {11, {768, 1}, "Q3_K", 330},
          {23, {256, 2}, "IQ4_XS", 272},
      }));
  CAPTURE(name);
  GgufBytes b;
  b.Header(1, 1).KvString("general.architecture", "flux").Tensor("w", dims, type, 0);
  const std::string file = b.Data(nbytes).str();
  absl::StatusOr<GgufHeader> h = ParseWhole(file);
  INFO(h.status().ToString());
  REQUIRE(h.ok());
  const GgufTensor& t = h->tensors.at(0);
  CHECK(t.ggml_type_name == name);
  CHECK(t.info.dtype == DType::kRaw);
  CHECK(t.info.nbytes == nbytes);
  CHECK(t.info.shape == std::vector<int64_t>(dims.rbegin(), dims.rend()));

  SECTION("a row that is not whole blocks is refused") {
    GgufBytes bad;
    bad.Header(1, 0).Tensor("w", {320, 2}, 12, 0);
    absl::StatusOr<GgufHeader> refused = ParseWhole(bad.Data(2 * 144).str());
    REQUIRE(!refused.ok());
    CHECK(refused.status().message() ==
          "GGUF: tensor 'w': rows of 320 elements are not a whole number of Q4_K blocks (256)");
  }
}

TEST_CASE("ParseGgufHeader accepts v2 and a custom alignment", "[gguf]") {
  CHECK(ParseWhole(ValidFile(2)).ok());
  GgufBytes b;
  b.Header(2, 1).KvU32("general.alignment", 64);
  b.Tensor("x", {16}, kF32, 0).Tensor("y", {16}, kF32, 64);
  absl::StatusOr<GgufHeader> h = ParseWhole(b.Data(128, 64).str());
  INFO(h.status().ToString());
  REQUIRE(h.ok());
  CHECK(h->alignment == 64);
  CHECK(h->data_offset % 64 == 0);
  CHECK(h->architecture.empty());
}

TEST_CASE("ParseGgufHeader asks for a longer prefix", "[gguf]") {
  const std::string file = ValidFile();
  for (size_t cut : {0, 3, 10, 24, 60, 200}) {
    CAPTURE(cut);
    absl::StatusOr<GgufHeader> h = ParseGgufHeader(file.substr(0, cut), file.size());
    REQUIRE_FALSE(h.ok());
    CHECK(h.status().code() == absl::StatusCode::kOutOfRange);
    CHECK(absl::StartsWith(h.status().message(), "need more bytes: "));
    uint64_t need = GgufPrefixBytesNeeded(h.status());
    CHECK(need > cut);
    CHECK(need <= file.size());
  }
  CHECK(GgufPrefixBytesNeeded(absl::OkStatus()) == 0);
  CHECK(GgufPrefixBytesNeeded(ParseWhole("GGML").status()) == 0);
}

TEST_CASE("ReadGgufHeader grows its prefix until the header fits", "[gguf]") {
  GgufBytes b;
  b.Header(1, 1).KvString("big", std::string(3 << 20, 'x'));  // 3 MiB string
  const std::string file = b.Tensor("w", {8}, kF32, 0).Data(32).str();
  std::vector<uint64_t> reads;
  absl::StatusOr<GgufHeader> h =
      ReadGgufHeader(file.size(), [&](uint64_t length, std::string* out) {
        reads.push_back(length);
        *out = file.substr(0, length);
        return absl::OkStatus();
      });
  INFO(h.status().ToString());
  REQUIRE(h.ok());
  CHECK(h->tensors.size() == 1);
  REQUIRE(reads.size() >= 2);
  CHECK(reads[0] == (1u << 20));
  CHECK(reads.back() <= file.size());

  // A short read from the callback is an error, not a loop.
  h = ReadGgufHeader(file.size(), [](uint64_t, std::string* out) {
    *out = "GGUF";
    return absl::OkStatus();
  });
  CHECK(h.status().code() == absl::StatusCode::kDataLoss);
}

TEST_CASE("ParseGgufHeader refuses broken files by name", "[gguf]") {
  const std::string g = "GGUF: ";
  const uint32_t kArray = static_cast<uint32_t>(GgufValueType::kArray);
  const uint32_t kU32 = static_cast<uint32_t>(GgufValueType::kUint32);
  auto [file, want] = GENERATE_REF(table<std::string, std::string>({
      {"GGML" + std::string(60, '\0'), "not a GGUF file: it starts with 'GGML', not 'GGUF'"},
      {"GG", g + "file is truncated: the header needs at least 4 bytes, the "
                 "file has 2"},
      {GgufBytes().Header(0, 1).KvString("general.name", "abcdefgh").str().substr(0, 60),
       g + "file is truncated: the header needs at least 64 bytes, the file "
           "has 60"},
      {GgufBytes().Header(0, 0, 1).Data(64).str(),
       g + "version 1 files are not supported; convert the model again with "
           "a current tool"},
      {GgufBytes().Raw("GGUF").U32(0x03000000).U64(0).U64(0).str(),
       g + "version field reads 50331648: a big-endian file, which is not "
           "supported"},
      {GgufBytes().Header(0, 0, 4).str(), g + "unsupported version 4 (this reader knows 2 and 3)"},
      {GgufBytes().Header(uint64_t{1} << 40, 0).Data(64).str(),
       g + "tensor count 1099511627776 is impossible for a 96-byte file "
           "(limit 1048576)"},
      {GgufBytes().Header(0, 1000).Data(64).str(),
       g + "metadata count 1000 is impossible for a 96-byte file (limit "
           "1048576)"},
      {GgufBytes().Header(0, 1).U64(uint64_t{1} << 60).Data(64).str(),
       g + "key 0 is 1152921504606846976 bytes long (limit 65535)"},
      {GgufBytes().Header(0, 1).Str("").U32(0).U8(0).Data(64).str(), g + "metadata key 0 is empty"},
      {GgufBytes().Header(0, 1).Key("x", GgufValueType(13)).Data(64).str(),
       g + "key 'x' has unknown value type 13"},
      {GgufBytes().Header(0, 1).Key("b", GgufValueType::kBool).U8(2).Data(64).str(),
       g + "key 'b' has a bool of 2 (must be 0 or 1)"},
      {GgufBytes().Header(0, 2).KvU32("k", 1).KvU32("k", 2).Data(64).str(),
       g + "duplicate metadata key 'k'"},
      {GgufBytes()
           .Header(0, 1)
           .Key("general.alignment", GgufValueType::kUint64)
           .U64(32)
           .Data(64)
           .str(),
       g + "general.alignment must be a uint32, got uint64"},
      {GgufBytes().Header(0, 1).KvU32("general.alignment", 48).Data(64).str(),
       g + "general.alignment is 48; it must be a power of two"},
      {GgufBytes().Header(0, 1).KvU32("general.alignment", 0).Data(64).str(),
       g + "general.alignment is 0; it must be a power of two"},
      {GgufBytes().Header(0, 1).KvU32("general.architecture", 1).Data(64).str(),
       g + "general.architecture must be a string, got uint32"},
      {GgufBytes()
           .Header(0, 1)
           .Key("n", GgufValueType::kArray)
           .U32(kArray)
           .U64(1)
           .U32(kArray)
           .U64(1)
           .U32(kArray)
           .U64(1)
           .U32(kArray)
           .U64(1)
           .Data(64)
           .str(),
       g + "key 'n' nests arrays deeper than 3 levels"},
      {GgufBytes()
           .Header(0, 1)
           .Key("a", GgufValueType::kArray)
           .U32(kU32)
           .U64(uint64_t{1} << 62)
           .Data(64)
           .str(),
       g + "key 'a' has an array of 4611686018427387904 uint32 elements, more "
           "than a header can hold"},
      {GgufBytes().Header(1, 0).Tensor(std::string(5000, 't'), {1}, kF32, 0).Data(64).str(),
       g + "the name of tensor 0 is 5000 bytes long (limit 4096)"},
      {GgufBytes().Header(1, 0).Tensor("t", {1, 1, 1, 1, 1}, kF32, 0).Data(64).str(),
       g + "tensor 't': has 5 dimensions (limit 4)"},
      {GgufBytes().Header(1, 0).Tensor("t", {uint64_t{1} << 63}, kF32, 0).Data(64).str(),
       g + "tensor 't': dimension 9223372036854775808 is out of range (ggml "
           "dims are int64)"},
      {GgufBytes().Header(1, 0).Tensor("t", {1ull << 32, 1ull << 32}, kF32, 0).Data(64).str(),
       g + "tensor 't': dims [4294967296, 4294967296] have more elements than "
           "fit in 63 bits"},
      {GgufBytes().Header(1, 0).Tensor("t", {1ull << 62, 2}, kF32, 0).Data(64).str(),
       g + "tensor 't': dims [4611686018427387904, 2] have more elements than "
           "fit in 63 bits"},
      {GgufBytes().Header(1, 0).Tensor("t", {4}, 4, 0).Data(64).str(),
       g + "tensor 't': unknown or unsupported GGML type 4"},
      {GgufBytes().Header(1, 0).Tensor("t", {33}, kQ4_0, 0).Data(64).str(),
       g + "tensor 't': rows of 33 elements are not a whole number of Q4_0 "
           "blocks (32)"},
      {GgufBytes().Header(1, 0).Tensor("t", {4}, kF32, 16).Data(64).str(),
       g + "tensor 't': offset 16 is not a multiple of the alignment 32"},
      {GgufBytes()
           .Header(2, 0)
           .Tensor("a", {16}, kF32, 0)
           .Tensor("b", {4}, kF32, 32)
           .Data(64)
           .str(),
       g + "tensors 'a' and 'b' overlap (data offsets 0+64 and 32)"},
      {GgufBytes().Header(2, 0).Tensor("t", {4}, kF32, 0).Tensor("t", {4}, kF32, 32).Data(64).str(),
       g + "duplicate tensor name 't'"},
      {GgufBytes().Header(1, 0).Tensor("t", {0}, kF32, 0).str(),
       g + "file is truncated: tensor data would start at byte 64, the file "
           "has 57"},
  }));
  CAPTURE(file.size());
  absl::StatusOr<GgufHeader> h = ParseWhole(file);
  REQUIRE_FALSE(h.ok());
  CHECK(h.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(h.status().message() == want);
}

TEST_CASE("ParseGgufHeader keeps spans inside the file", "[gguf]") {
  GgufBytes b;
  b.Header(1, 0).Tensor("t", {8}, kF32, 0);
  absl::StatusOr<GgufHeader> h = ParseWhole(GgufBytes(b).Data(16).str());
  REQUIRE_FALSE(h.ok());
  CHECK(h.status().code() == absl::StatusCode::kOutOfRange);
  CHECK(h.status().message() ==
        "GGUF: tensor 't': 32 bytes at data offset 0 run past the end of the "
        "file (the data section has 16 bytes)");
  CHECK(ParseWhole(GgufBytes(b).Data(32).str()).ok());

  // An offset near 2^64 must not wrap around.
  GgufBytes far;
  far.Header(1, 0).Tensor("t", {8}, kF32, ~uint64_t{31});
  h = ParseWhole(far.Data(64).str());
  CHECK(h.status().code() == absl::StatusCode::kOutOfRange);
}

TEST_CASE("ParseGgufHeader bounds the header size", "[gguf]") {
  // A 300 MiB string in a file said to be 1 GiB: refused from a short
  // prefix, without asking for 300 MiB.
  GgufBytes b;
  b.Header(0, 1).Key("s", GgufValueType::kString).U64(300ull << 20);
  absl::StatusOr<GgufHeader> h = ParseGgufHeader(b.str(), 1ull << 30);
  REQUIRE_FALSE(h.ok());
  CHECK(h.status().message() == "GGUF: a string value is 314572800 bytes long (limit 268435456)");
  CHECK(GgufPrefixBytesNeeded(h.status()) == 0);

  // A string at the limit fits on its own, but not after the bytes before it.
  GgufBytes at_limit;
  at_limit.Header(0, 1).Key("s", GgufValueType::kString).U64(kMaxGgufHeaderBytes);
  h = ParseGgufHeader(at_limit.str(), 1ull << 30);
  REQUIRE_FALSE(h.ok());
  CHECK(h.status().message() == "GGUF: header is larger than the limit of 268435456 bytes");
}

}  // namespace
}  // namespace distorch
