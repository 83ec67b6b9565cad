#include "daemon/load/model_file.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "tests/daemon/model_files.h"

namespace distorch {
namespace {

using testing::GgufWriter;
using testing::TempDir;

constexpr uint32_t kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8, kQ4_K = 12;

GgufWriter SmallGguf() {
  GgufWriter w;
  w.AddString("general.architecture", "flux");
  // 64 x 2 Q4_0: 2 blocks of 32 per row -> 4 blocks x 18 bytes.
  w.AddTensor({"blocks.0.attn.qkv.weight", {64, 2}, kQ4_0, testing::PatternBytes(72, 1)});
  w.AddTensor({"blocks.0.attn.qkv.bias", {3}, kF32, testing::PatternBytes(12, 2)});
  // 32 x 3 Q8_0: 3 blocks x 34 bytes.
  w.AddTensor({"blocks.0.mlp.weight", {32, 3}, kQ8_0, testing::PatternBytes(102, 3)});
  w.AddTensor({"norm.weight", {5}, kF16, testing::PatternBytes(10, 4)});
  // 256 x 1 Q4_K: 1 block of 144 bytes.
  w.AddTensor({"head.weight", {256, 1}, kQ4_K, testing::PatternBytes(144, 5)});
  return w;
}

TEST_CASE("ReadModelFile reads GGUF tensors with their ggml types", "[model_file][gguf]") {
  TempDir dir;
  const std::string path = dir.File("m.gguf");
  testing::WriteFile(path, SmallGguf().Bytes());
  UniqueFd fd = testing::OpenRead(path);
  absl::StatusOr<ModelFile> file = ReadModelFile(fd.get());
  REQUIRE(file.ok());
  CHECK(file->format == "gguf");
  REQUIRE(file->tensors.size() == 5);
  REQUIRE(file->tensor_type_names.size() == 5);
  const std::vector<TensorInfo>& t = file->tensors;
  CHECK(file->tensor_type_names == std::vector<std::string>{"Q4_0", "F32", "Q8_0", "F16", "Q4_K"});
  CHECK(t[0].name == "blocks.0.attn.qkv.weight");
  CHECK(t[0].dtype == DType::kRaw);
  CHECK(t[0].nbytes == 72);
  CHECK(t[0].shape == std::vector<int64_t>{2, 64});  // PyTorch order
  CHECK((t[1].dtype == DType::kF32 && t[1].nbytes == 12));
  CHECK((t[2].dtype == DType::kRaw && t[2].nbytes == 102));
  CHECK((t[3].dtype == DType::kF16 && t[3].nbytes == 10));
  CHECK((t[4].dtype == DType::kRaw && t[4].nbytes == 144));
  // Offsets are absolute and aligned to 32.
  for (const TensorInfo& info : t) CHECK(info.file_offset % 32 == 0);
  CHECK(t[1].file_offset == t[0].file_offset + 96);
}

TEST_CASE("ReadModelFile reads GGUF headers longer than the first prefix", "[model_file][gguf]") {
  // A 3 MiB tokenizer-like string: the parser asks for a longer prefix twice.
  GgufWriter w = SmallGguf();
  w.AddString("tokenizer.ggml.merges", std::string(3 << 20, 'm'));
  TempDir dir;
  const std::string path = dir.File("long.gguf");
  testing::WriteFile(path, w.Bytes());
  UniqueFd fd = testing::OpenRead(path);
  absl::StatusOr<ModelFile> file = ReadModelFile(fd.get());
  REQUIRE(file.ok());
  CHECK(file->tensors.size() == 5);
  CHECK(file->tensors[0].file_offset > (3u << 20));
}

TEST_CASE("ReadModelFile passes the GGUF parser's errors on", "[model_file][gguf]") {
  std::string bytes = SmallGguf().Bytes();
  TempDir dir;
  const std::string path = dir.File("cut.gguf");
  SECTION("truncated data") {
    bytes.resize(bytes.size() - 10);
    testing::WriteFile(path, bytes);
    UniqueFd fd = testing::OpenRead(path);
    absl::StatusOr<ModelFile> file = ReadModelFile(fd.get());
    REQUIRE(absl::IsOutOfRange(file.status()));
    CHECK(absl::StrContains(file.status().message(), "'head.weight'"));
    CHECK(absl::StrContains(file.status().message(), "run past the end of the file"));
  }
  SECTION("version 1") {
    bytes[4] = 1;
    testing::WriteFile(path, bytes);
    UniqueFd fd = testing::OpenRead(path);
    absl::StatusOr<ModelFile> file = ReadModelFile(fd.get());
    REQUIRE(absl::IsInvalidArgument(file.status()));
    CHECK(absl::StrContains(file.status().message(), "version 1 files are not supported"));
  }
}

TEST_CASE("ReadModelFile still reads safetensors", "[model_file]") {
  TempDir dir;
  const std::string path = dir.File("m.safetensors");
  testing::WriteFile(path,
                     testing::SafetensorsBytes({{"w", "F32", {2, 2}, testing::PatternBytes(16, 1)},
                                                {"b", "F16", {2}, testing::PatternBytes(4, 2)}}));
  UniqueFd fd = testing::OpenRead(path);
  absl::StatusOr<ModelFile> file = ReadModelFile(fd.get());
  REQUIRE(file.ok());
  CHECK(file->format == "safetensors");
  CHECK(file->tensors.size() == 2);
  CHECK(file->tensor_type_names.empty());
}

}  // namespace
}  // namespace distorch
