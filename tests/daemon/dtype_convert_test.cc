#include "daemon/load/dtype_convert.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"

namespace distorch {
namespace {

bool HaveTorch() { return absl::StartsWith(ConversionEngine(), "LibTorch"); }
bool HaveFloat8() { return HaveTorch() && !absl::StrContains(ConversionEngine(), "no float8"); }

float F32(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint32_t Bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

TEST_CASE("ParseWeightDtype reads ComfyUI's spellings", "[dtype]") {
  auto [text, want] = GENERATE(table<std::string, std::string>({
      {"", "keep"},
      {"keep", "keep"},
      {"default", "keep"},
      {" Default ", "keep"},
      {"fp16", "fp16"},
      {"FLOAT16", "fp16"},
      {"half", "fp16"},
      {"bf16", "bf16"},
      {"bfloat16", "bf16"},
      {"fp32", "fp32"},
      {"float32", "fp32"},
  }));
  CAPTURE(text);
  absl::StatusOr<WeightDtype> dtype = ParseWeightDtype(text);
  if (want != "keep" && !HaveTorch()) {
    REQUIRE(absl::IsUnimplemented(dtype.status()));
    CHECK(absl::StrContains(dtype.status().message(), "built without LibTorch"));
    return;
  }
  REQUIRE(dtype.ok());
  CHECK(dtype->name == want);
  CHECK(dtype->target.has_value() == (want != "keep"));
}

TEST_CASE("ParseWeightDtype names what is known", "[dtype]") {
  absl::StatusOr<WeightDtype> dtype = ParseWeightDtype("fp12");
  REQUIRE(absl::IsInvalidArgument(dtype.status()));
  CHECK(dtype.status().message() ==
        "weight_dtype 'fp12' is not known; use one of keep (or default), fp16, bf16, fp32, "
        "fp8_e4m3fn, fp8_e5m2");
}

TEST_CASE("float8 targets need a LibTorch that has them", "[dtype]") {
  auto [text, canonical] = GENERATE(table<std::string, std::string>({
      {"fp8_e4m3fn", "fp8_e4m3fn"},
      {"fp8_e4m3fn_fast", "fp8_e4m3fn"},
      {"fp8_e5m2", "fp8_e5m2"},
  }));
  CAPTURE(text);
  absl::StatusOr<WeightDtype> dtype = ParseWeightDtype(text);
  if (HaveFloat8()) {
    REQUIRE(dtype.ok());
    CHECK(dtype->name == canonical);
  } else if (HaveTorch()) {
    REQUIRE(absl::IsUnimplemented(dtype.status()));
    // "weight_dtype 'fp8_e5m2': this build cannot convert to fp8_e5m2
    //  (LibTorch 1.13.0 has no float8 types; build against LibTorch 2.1 or newer)"
    CHECK(absl::StartsWith(
        dtype.status().message(),
        "weight_dtype '" + text + "': this build cannot convert to " + canonical + " (LibTorch "));
    CHECK(absl::StrContains(dtype.status().message(),
                            " has no float8 types; build against LibTorch 2.1 or newer)"));
  } else {
    REQUIRE(absl::IsUnimplemented(dtype.status()));
  }
}

TEST_CASE("StoredTensors converts floating tensors only", "[dtype]") {
  std::vector<TensorInfo> file = {
      {"a.weight", DType::kF32, {2, 3}, 100, 24}, {"a.index", DType::kI32, {4}, 124, 16},
      {"b.weight", DType::kBF16, {5}, 140, 10},   {"b.mask", DType::kBool, {3}, 150, 3},
      {"c.weight", DType::kF64, {2}, 153, 16},
  };
  SECTION("keep changes nothing") {
    absl::StatusOr<std::vector<TensorInfo>> stored =
        StoredTensors(file, "safetensors", WeightDtype{});
    REQUIRE(stored.ok());
    CHECK(stored->size() == 5);
    CHECK((*stored)[0].nbytes == 24);
  }
  if (!HaveTorch()) return;
  SECTION("fp16") {
    absl::StatusOr<WeightDtype> fp16 = ParseWeightDtype("fp16");
    REQUIRE(fp16.ok());
    absl::StatusOr<std::vector<TensorInfo>> stored = StoredTensors(file, "safetensors", *fp16);
    REQUIRE(stored.ok());
    const std::vector<TensorInfo>& s = *stored;
    CHECK((s[0].dtype == DType::kF16 && s[0].nbytes == 12 && s[0].file_offset == 100));
    CHECK((s[1].dtype == DType::kI32 && s[1].nbytes == 16));
    CHECK((s[2].dtype == DType::kF16 && s[2].nbytes == 10));
    CHECK((s[3].dtype == DType::kBool && s[3].nbytes == 3));
    CHECK((s[4].dtype == DType::kF16 && s[4].nbytes == 4));
    CHECK(s[0].shape == std::vector<int64_t>{2, 3});
  }
  SECTION("GGUF files only keep") {
    absl::StatusOr<WeightDtype> bf16 = ParseWeightDtype("bf16");
    REQUIRE(bf16.ok());
    absl::StatusOr<std::vector<TensorInfo>> stored = StoredTensors(file, "gguf", *bf16);
    REQUIRE(absl::IsUnimplemented(stored.status()));
    CHECK(stored.status().message() ==
          "weight_dtype 'bf16' does not apply to GGUF files: their quantised blocks are "
          "stored as they are; use weight_dtype \"keep\"");
  }
  if (!HaveFloat8()) {
    SECTION("float8 sources need float8 support") {
      std::vector<TensorInfo> f8 = {{"x", DType::kF8E4M3, {4}, 0, 4}};
      absl::StatusOr<std::vector<TensorInfo>> stored =
          StoredTensors(f8, "safetensors", *ParseWeightDtype("fp16"));
      REQUIRE(absl::IsUnimplemented(stored.status()));
      CHECK(absl::StartsWith(stored.status().message(),
                             "tensor 'x': this build cannot convert from F8_E4M3 (LibTorch "));
    }
  }
}

// Reference values worked out by hand from the IEEE 754 encodings, rounding
// to nearest with ties to even.
TEST_CASE("ConvertElements F32 to F16 rounds to nearest even", "[dtype]") {
  if (!HaveTorch()) return;
  const std::vector<float> in = {1.0f,
                                 -2.0f,
                                 F32(0x3DCCCCCD) /* 0.1 */,
                                 65504.0f,
                                 65520.0f /* tie -> inf */,
                                 1.0f / 3.0f,
                                 F32(0x3F801000) /* 1+2^-11: tie -> 1 */,
                                 F32(0x3F803000) /* 1+3*2^-11: tie -> 1+2^-9 */,
                                 1e-8f /* underflows */,
                                 6e-8f /* smallest subnormal */,
                                 0.0f,
                                 -0.0f};
  const std::vector<uint16_t> want = {0x3C00, 0xC000, 0x2E66, 0x7BFF, 0x7C00, 0x3555,
                                      0x3C00, 0x3C02, 0x0000, 0x0001, 0x0000, 0x8000};
  std::vector<uint16_t> out(in.size(), 0xFFFF);
  REQUIRE(ConvertElements(DType::kF32, DType::kF16, in.data(), out.data(), in.size()).ok());
  for (size_t i = 0; i < in.size(); ++i) {
    CAPTURE(i, in[i]);
    CHECK(out[i] == want[i]);
  }
}

TEST_CASE("ConvertElements F32 to BF16 rounds to nearest even", "[dtype]") {
  if (!HaveTorch()) return;
  const std::vector<uint32_t> in = {0x3F800000, 0x3EAAAAAB,           0x3F808000, 0x3F818000,
                                    0x3F808001, 0xC0490FDB /* -pi */, 0x7F7FFFFF /* max */};
  const std::vector<uint16_t> want = {0x3F80, 0x3EAB, 0x3F80, 0x3F82, 0x3F81, 0xC049, 0x7F80};
  std::vector<uint16_t> out(in.size(), 0);
  REQUIRE(ConvertElements(DType::kF32, DType::kBF16, in.data(), out.data(), in.size()).ok());
  for (size_t i = 0; i < in.size(); ++i) {
    CAPTURE(i);
    CHECK(out[i] == want[i]);
  }
}

TEST_CASE("ConvertElements widens exactly and keeps NaN", "[dtype]") {
  if (!HaveTorch()) return;
  SECTION("F16 to F32") {
    const std::vector<uint16_t> in = {0x3555, 0x0001, 0x7C00, 0xFE00};
    std::vector<float> out(in.size());
    REQUIRE(ConvertElements(DType::kF16, DType::kF32, in.data(), out.data(), in.size()).ok());
    CHECK(out[0] == 0.333251953125f);
    CHECK(out[1] == 5.9604644775390625e-08f);
    CHECK(Bits(out[2]) == 0x7F800000);
    CHECK(out[3] != out[3]);
  }
  SECTION("BF16 to F32") {
    const std::vector<uint16_t> in = {0x3EAB, 0xC049};
    std::vector<uint32_t> out(in.size());
    REQUIRE(ConvertElements(DType::kBF16, DType::kF32, in.data(), out.data(), in.size()).ok());
    CHECK(out[0] == 0x3EAB0000);
    CHECK(out[1] == 0xC0490000);
  }
  SECTION("F64 and F16 to BF16") {
    const std::vector<double> wide = {1.0, -0.5};
    std::vector<uint16_t> out(2);
    REQUIRE(ConvertElements(DType::kF64, DType::kBF16, wide.data(), out.data(), 2).ok());
    CHECK(out == std::vector<uint16_t>{0x3F80, 0xBF00});
    const std::vector<uint16_t> half = {0x3C00, 0xC000};
    REQUIRE(ConvertElements(DType::kF16, DType::kBF16, half.data(), out.data(), 2).ok());
    CHECK(out == std::vector<uint16_t>{0x3F80, 0xC000});
  }
  SECTION("NaN stays NaN") {
    const std::vector<float> in = {F32(0x7FC00000)};
    std::vector<uint16_t> out(1);
    REQUIRE(ConvertElements(DType::kF32, DType::kF16, in.data(), out.data(), 1).ok());
    CHECK((out[0] & 0x7C00) == 0x7C00);
    CHECK((out[0] & 0x03FF) != 0);
  }
}

TEST_CASE("ConvertElements to float8 where the build has it", "[dtype]") {
  if (!HaveFloat8()) return;
  const std::vector<float> in = {1.0f, -2.0f, 448.0f, 0.0f};
  std::vector<uint8_t> out(in.size());
  REQUIRE(ConvertElements(DType::kF32, DType::kF8E4M3, in.data(), out.data(), in.size()).ok());
  CHECK(out == std::vector<uint8_t>{0x38, 0xC0, 0x7E, 0x00});
  REQUIRE(ConvertElements(DType::kF32, DType::kF8E5M2, in.data(), out.data(), in.size()).ok());
  CHECK(out == std::vector<uint8_t>{0x3C, 0xC0, 0x5F, 0x00});
}

TEST_CASE("ConvertElements refuses non-floating dtypes", "[dtype]") {
  int32_t in = 1;
  uint16_t out = 0;
  absl::Status s = ConvertElements(DType::kI32, DType::kF16, &in, &out, 1);
  REQUIRE(absl::IsInvalidArgument(s));
  CHECK(s.message() == "cannot convert I32 to F16: only floating dtypes are converted");
}

}  // namespace
}  // namespace distorch
