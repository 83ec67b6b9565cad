#include "daemon/load/loader.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "daemon/devices/memfd_arena.h"
#include "daemon/load/dtype_convert.h"
#include "daemon/load/model_file.h"
#include "tests/daemon/model_files.h"

namespace distorch {
namespace {

using testing::StTensor;
using testing::TempDir;

// Stands in for a GPU arena (no host mapping: the loader must go through
// Write, the path a CUDA arena takes) or for a host arena without a memfd
// (`mapped`: the loader writes through host_data()).
class VectorArena : public Arena {
 public:
  VectorArena(uint64_t size, bool mapped) : bytes_(size, 0xEE), mapped_(mapped) {}
  DeviceId device() const override { return DeviceId::Sim(7); }
  uint64_t size() const override { return bytes_.size(); }
  uint8_t* host_data() override { return mapped_ ? bytes_.data() : nullptr; }
  absl::Status Write(uint64_t offset, const void* src, size_t n) override {
    if (offset + n > bytes_.size()) return absl::OutOfRangeError("write past the end");
    std::memcpy(bytes_.data() + offset, src, n);
    ++writes;
    return absl::OkStatus();
  }
  absl::Status Read(uint64_t offset, void* dst, size_t n) const override {
    if (offset + n > bytes_.size()) return absl::OutOfRangeError("read past the end");
    std::memcpy(dst, bytes_.data() + offset, n);
    return absl::OkStatus();
  }
  absl::Status Seal() override { return absl::OkStatus(); }
  ArenaExport Export() const override {
    ArenaExport e;
    e.kind = ArenaExport::Kind::kCudaIpc;
    return e;
  }
  std::atomic<int> writes{0};  // the loader writes from several lanes at once

 private:
  std::vector<uint8_t> bytes_;
  bool mapped_;
};

enum class Target { kMemfd, kMemfdPreadOnly, kDevice, kMappedNoMemfd };

LoadOptions::HostCopy HostCopyFor(Target target) {
  return target == Target::kMemfdPreadOnly ? LoadOptions::HostCopy::kPread
                                           : LoadOptions::HostCopy::kSplice;
}

// A resident with every tensor in one arena at 256-aligned offsets.
std::unique_ptr<Resident> MakeResident(const std::vector<TensorInfo>& stored, Target target) {
  auto r = std::make_unique<Resident>();
  r->tensors = stored;
  ArenaPlan plan;
  plan.device = DeviceId::Cpu();
  uint64_t offset = 0;
  for (size_t i = 0; i < stored.size(); ++i) {
    r->layout.slots.push_back({0, offset});
    plan.tensors.push_back(i);
    offset = (offset + stored[i].nbytes + 255) / 256 * 256;
  }
  plan.bytes = offset;
  r->layout.arenas.push_back(plan);
  if (target == Target::kDevice || target == Target::kMappedNoMemfd) {
    r->arenas.push_back(
        std::make_unique<VectorArena>(offset + 256, target == Target::kMappedNoMemfd));
  } else {
    auto arena = MemfdArena::Create(DeviceId::Cpu(), offset + 256, "loader-test",
                                    std::make_shared<std::atomic<uint64_t>>(0));
    REQUIRE(arena.ok());
    r->arenas.push_back(*std::move(arena));
  }
  for (const TensorInfo& t : stored) r->bytes_total += t.nbytes;
  return r;
}

std::string ArenaBytes(const Resident& r, size_t tensor) {
  std::string out(r.tensors[tensor].nbytes, '\0');
  const TensorSlot& slot = r.layout.slots[tensor];
  REQUIRE(r.arenas[slot.arena]->Read(slot.offset, out.data(), out.size()).ok());
  return out;
}

// Reference bf16 by bit manipulation: round to nearest, ties to even (finite
// inputs only).
uint16_t RefBf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return static_cast<uint16_t>((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16);
}

Target Targets() {
  return GENERATE(Target::kMemfd, Target::kMemfdPreadOnly, Target::kDevice, Target::kMappedNoMemfd);
}

TEST_CASE("LoadIntoArenas copies every byte, across chunk boundaries", "[loader]") {
  const Target target = Targets();
  const int threads = GENERATE(1, 3);
  CAPTURE(static_cast<int>(target), threads);
  TempDir dir;
  std::vector<StTensor> st = {
      {"a.weight", "F32", {3000}, testing::PatternBytes(12000, 1)},
      {"a.bias", "F16", {7}, testing::PatternBytes(14, 2)},
      {"b.index", "I64", {1}, testing::PatternBytes(8, 3)},
      {"b.empty", "F32", {0}, ""},
      {"c.weight", "U8", {9001}, testing::PatternBytes(9001, 4)},
  };
  const std::string path = dir.File("m.safetensors");
  testing::WriteFile(path, testing::SafetensorsBytes(st));
  UniqueFd fd = testing::OpenRead(path);
  absl::StatusOr<ModelFile> file = ReadModelFile(fd.get());
  REQUIRE(file.ok());

  std::unique_ptr<Resident> r = MakeResident(file->tensors, target);
  LoadOptions options;
  options.threads = threads;
  options.chunk_bytes = 4096;
  options.host_copy = HostCopyFor(target);
  REQUIRE(LoadIntoArenas(fd.get(), *r, options).ok());
  CHECK(r->bytes_loaded == r->bytes_total);
  std::map<std::string, std::string> want;
  for (const StTensor& t : st) want[t.name] = t.data;
  for (size_t i = 0; i < r->tensors.size(); ++i) {
    CAPTURE(r->tensors[i].name);
    CHECK(ArenaBytes(*r, i) == want[r->tensors[i].name]);
  }
}

TEST_CASE("LoadIntoArenas converts floating tensors on the way", "[loader][dtype]") {
  if (!absl::StartsWith(ConversionEngine(), "LibTorch")) return;
  const Target target = Targets();
  CAPTURE(static_cast<int>(target));
  // 5000 elements: chunks of 1024 F32 elements split it unevenly.
  std::vector<float> weights(5000);
  for (size_t i = 0; i < weights.size(); ++i) {
    weights[i] = static_cast<float>((static_cast<int>(i * 7919 % 20011) - 10000)) / 3.0f;
  }
  // Values whose f16 encodings were worked out by hand (see dtype_convert_test).
  const std::vector<float> known = {1.0f, -2.0f, 65504.0f, 1.0f / 3.0f, 1e-8f, 6e-8f};
  const std::vector<uint16_t> known_f16 = {0x3C00, 0xC000, 0x7BFF, 0x3555, 0x0000, 0x0001};
  std::vector<float> known_repeated;
  std::vector<uint16_t> known_f16_repeated;
  for (int i = 0; i < 700; ++i) {
    known_repeated.insert(known_repeated.end(), known.begin(), known.end());
    known_f16_repeated.insert(known_f16_repeated.end(), known_f16.begin(), known_f16.end());
  }
  const std::vector<int32_t> ints = {1, -2, 3};
  TempDir dir;
  const std::string path = dir.File("m.safetensors");
  testing::WriteFile(path, testing::SafetensorsBytes({
                               {"w", "F32", {50, 100}, testing::Bytes(weights)},
                               {"known", "F32", {4200}, testing::Bytes(known_repeated)},
                               {"ids", "I32", {3}, testing::Bytes(ints)},
                           }));
  UniqueFd fd = testing::OpenRead(path);
  absl::StatusOr<ModelFile> file = ReadModelFile(fd.get());
  REQUIRE(file.ok());

  SECTION("to bf16") {
    absl::StatusOr<std::vector<TensorInfo>> stored =
        StoredTensors(file->tensors, file->format, *ParseWeightDtype("bf16"));
    REQUIRE(stored.ok());
    std::unique_ptr<Resident> r = MakeResident(*stored, target);
    LoadOptions options;
    options.threads = 2;
    options.chunk_bytes = 4096;
    options.file_tensors = &file->tensors;
    options.host_copy = HostCopyFor(target);
    REQUIRE(LoadIntoArenas(fd.get(), *r, options).ok());
    CHECK(r->bytes_loaded == 10000 + 8400 + 12);
    std::vector<uint16_t> want(weights.size());
    for (size_t i = 0; i < weights.size(); ++i) want[i] = RefBf16(weights[i]);
    CHECK(ArenaBytes(*r, 0) == testing::Bytes(want));
    CHECK(ArenaBytes(*r, 2) == testing::Bytes(ints));
  }
  SECTION("to fp16") {
    absl::StatusOr<std::vector<TensorInfo>> stored =
        StoredTensors(file->tensors, file->format, *ParseWeightDtype("fp16"));
    REQUIRE(stored.ok());
    std::unique_ptr<Resident> r = MakeResident(*stored, target);
    LoadOptions options;
    options.chunk_bytes = 4096;
    options.file_tensors = &file->tensors;
    REQUIRE(LoadIntoArenas(fd.get(), *r, options).ok());
    CHECK(ArenaBytes(*r, 1) == testing::Bytes(known_f16_repeated));
    CHECK(ArenaBytes(*r, 2) == testing::Bytes(ints));
  }
}

TEST_CASE("LoadIntoArenas reports a file shorter than its header says", "[loader]") {
  const Target target = Targets();
  CAPTURE(static_cast<int>(target));
  TempDir dir;
  const std::string path = dir.File("m.safetensors");
  testing::WriteFile(
      path, testing::SafetensorsBytes({{"w", "U8", {100000}, testing::PatternBytes(100000, 9)}}));
  UniqueFd fd = testing::OpenRead(path);
  absl::StatusOr<ModelFile> file = ReadModelFile(fd.get());
  REQUIRE(file.ok());
  // The file loses its last 50,000 bytes after the header was read.
  REQUIRE(truncate(path.c_str(), static_cast<off_t>(file->file_size - 50000)) == 0);
  std::unique_ptr<Resident> r = MakeResident(file->tensors, target);
  LoadOptions options;
  options.host_copy = HostCopyFor(target);
  absl::Status s = LoadIntoArenas(fd.get(), *r, options);
  REQUIRE(absl::IsDataLoss(s));
  CHECK(absl::StrContains(s.message(), "inside tensor 'w' (was it truncated while loading?)"));
}

TEST_CASE("LoadIntoArenas stops when cancelled", "[loader]") {
  TempDir dir;
  const std::string path = dir.File("m.safetensors");
  testing::WriteFile(
      path, testing::SafetensorsBytes({{"w", "U8", {10000}, testing::PatternBytes(10000, 9)}}));
  UniqueFd fd = testing::OpenRead(path);
  absl::StatusOr<ModelFile> file = ReadModelFile(fd.get());
  REQUIRE(file.ok());
  std::unique_ptr<Resident> r = MakeResident(file->tensors, Target::kMemfd);
  std::atomic<bool> cancel{true};
  LoadOptions options;
  options.cancel = &cancel;
  absl::Status s = LoadIntoArenas(fd.get(), *r, options);
  REQUIRE(absl::IsCancelled(s));
  CHECK(s.message() == "load cancelled");
}

}  // namespace
}  // namespace distorch
