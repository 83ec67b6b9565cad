// Broker::Load end to end in-process, on cpu and sim devices: weight-dtype
// conversion (identity, sizes, bytes) and GGUF files.
#include <catch2/catch.hpp>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "daemon/broker.h"
#include "daemon/load/dtype_convert.h"
#include "tests/daemon/model_files.h"
#include "tests/daemon/sim_broker.h"

namespace distorch {
namespace {

using testing::MakeSimBroker;

using testing::TempDir;

absl::StatusOr<LoadOutcome> LoadFile(Broker& broker, SessionId session, const std::string& path,
                                     const std::string& dtype, const std::string& allocation) {
  LoadArgs args;
  args.session = session;
  args.file_ticket = broker.tickets().PutFile(testing::OpenRead(path));
  args.name = "m";
  args.allocation = allocation;
  args.weight_dtype = dtype;
  return broker.Load(args, nullptr);
}

std::string StoredBytes(const Resident& r, size_t tensor) {
  std::string out(r.tensors[tensor].nbytes, '\0');
  const TensorSlot& slot = r.layout.slots[tensor];
  REQUIRE(r.arenas[slot.arena]->Read(slot.offset, out.data(), out.size()).ok());
  return out;
}

bool HaveTorch() { return absl::StartsWith(ConversionEngine(), "LibTorch"); }

TEST_CASE("Broker::Load converts to the weight dtype and keys the model by it", "[broker][dtype]") {
  if (!HaveTorch()) return;
  // Values with hand-worked encodings: f16 {1, -2, 1/3, 65504}; bf16 rounds
  // 1/3 = 0x3EAAAAAB up to 0x3EAB and 65504 = 0x477FE000 up to 0x4780.
  const std::vector<float> w = {1.0f, -2.0f, 1.0f / 3.0f, 65504.0f};
  const std::vector<int64_t> ids = {5, 6};
  TempDir dir;
  const std::string path = dir.File("m.safetensors");
  testing::WriteFile(path, testing::SafetensorsBytes({
                               {"blocks.0.weight", "F32", {2, 2}, testing::Bytes(w)},
                               {"blocks.1.weight", "F32", {2, 2}, testing::Bytes(w)},
                               {"blocks.1.ids", "I64", {2}, testing::Bytes(ids)},
                           }));
  std::unique_ptr<Broker> broker = MakeSimBroker();
  SessionId session = broker->OpenSession("test", 1);

  // blocks.0 is 8 bytes once converted to fp16 (16 in the file): it fits an
  // 8-byte quota only if the planner saw the converted size.
  absl::StatusOr<LoadOutcome> fp16 = LoadFile(*broker, session, path, "fp16", "sim:0,8b;cpu,*");
  REQUIRE(fp16.ok());
  const Resident& r = *fp16->resident;
  CHECK(r.weight_dtype == "fp16");
  REQUIRE(r.tensors.size() == 3);
  CHECK((r.tensors[0].dtype == DType::kF16 && r.tensors[0].nbytes == 8));
  CHECK((r.tensors[2].dtype == DType::kI64 && r.tensors[2].nbytes == 16));
  CHECK(r.bytes_total == 8 + 8 + 16);
  CHECK(r.placement.total_bytes == 32);
  REQUIRE(r.placement.block_device.size() == 2);
  CHECK(r.placement.block_device[0] == DeviceId::Sim(0));
  CHECK(r.placement.block_device[1] == DeviceId::Cpu());
  const std::vector<uint16_t> f16 = {0x3C00, 0xC000, 0x3555, 0x7BFF};
  CHECK(StoredBytes(r, 0) == testing::Bytes(f16));
  CHECK(StoredBytes(r, 1) == testing::Bytes(f16));
  CHECK(StoredBytes(r, 2) == testing::Bytes(ids));

  SECTION("the same dtype, spelled differently, shares the residency") {
    absl::StatusOr<LoadOutcome> again = LoadFile(*broker, session, path, "Float16", "");
    REQUIRE(again.ok());
    CHECK(again->shared);
    CHECK(again->model == fp16->model);
  }
  SECTION("another dtype is another model") {
    absl::StatusOr<LoadOutcome> bf16 = LoadFile(*broker, session, path, "bf16", "cpu,*");
    REQUIRE(bf16.ok());
    CHECK_FALSE(bf16->shared);
    CHECK(bf16->model != fp16->model);
    const std::vector<uint16_t> want = {0x3F80, 0xC000, 0x3EAB, 0x4780};
    CHECK(StoredBytes(*bf16->resident, 0) == testing::Bytes(want));
    absl::StatusOr<LoadOutcome> keep =
        LoadFile(*broker, session, path, "default", "sim:0,8b;cpu,*");
    REQUIRE(keep.ok());
    CHECK_FALSE(keep->shared);
    CHECK(keep->resident->weight_dtype == "keep");
    CHECK(keep->resident->placement.block_device[0] == DeviceId::Cpu());
    CHECK(StoredBytes(*keep->resident, 0) == testing::Bytes(w));
  }
}

TEST_CASE("Broker::Load refuses dtypes it cannot produce", "[broker][dtype]") {
  TempDir dir;
  const std::string path = dir.File("m.safetensors");
  testing::WriteFile(path,
                     testing::SafetensorsBytes({{"w", "F32", {1}, testing::PatternBytes(4, 1)}}));
  std::unique_ptr<Broker> broker = MakeSimBroker();
  SessionId session = broker->OpenSession("test", 1);
  absl::StatusOr<LoadOutcome> bad = LoadFile(*broker, session, path, "int4", "cpu,*");
  REQUIRE(absl::IsInvalidArgument(bad.status()));
  CHECK(absl::StartsWith(bad.status().message(), "weight_dtype 'int4' is not known"));
}

TEST_CASE("Broker::Load stores GGUF blocks as they are", "[broker][gguf]") {
  testing::GgufWriter w;
  w.AddString("general.architecture", "flux");
  const std::string q4 = testing::PatternBytes(72, 1), q8 = testing::PatternBytes(102, 2),
                    f32 = testing::PatternBytes(12, 3);
  w.AddTensor({"blocks.0.attn.weight", {64, 2}, 2 /* Q4_0 */, q4});
  w.AddTensor({"blocks.0.attn.bias", {3}, 0 /* F32 */, f32});
  w.AddTensor({"blocks.1.mlp.weight", {32, 3}, 8 /* Q8_0 */, q8});
  TempDir dir;
  const std::string path = dir.File("m.gguf");
  testing::WriteFile(path, w.Bytes());
  std::unique_ptr<Broker> broker = MakeSimBroker();
  SessionId session = broker->OpenSession("test", 1);

  SECTION("keep") {
    absl::StatusOr<LoadOutcome> out = LoadFile(*broker, session, path, "", "sim:0,100b;cpu,*");
    REQUIRE(out.ok());
    const Resident& r = *out->resident;
    CHECK(r.format == "gguf");
    CHECK(r.tensor_type_names == std::vector<std::string>{"Q4_0", "F32", "Q8_0"});
    CHECK((r.tensors[0].dtype == DType::kRaw && r.tensors[0].nbytes == 72));
    CHECK(r.tensors[0].shape == std::vector<int64_t>{2, 64});
    CHECK(StoredBytes(r, 0) == q4);
    CHECK(StoredBytes(r, 1) == f32);
    CHECK(StoredBytes(r, 2) == q8);
  }
  SECTION("a weight dtype is refused by name") {
    absl::StatusOr<LoadOutcome> out = LoadFile(*broker, session, path, "fp16", "");
    if (!HaveTorch()) {
      REQUIRE(absl::IsUnimplemented(out.status()));
      return;
    }
    REQUIRE(absl::IsUnimplemented(out.status()));
    CHECK(out.status().message() ==
          "model 'm': weight_dtype 'fp16' does not apply to GGUF files: their quantised "
          "blocks are stored as they are; use weight_dtype \"keep\"");
  }
}

}  // namespace
}  // namespace distorch
