// Broker::Load of a part of a file (LoadArgs.tensor_prefixes), in-process on
// cpu and sim devices: each part is planned with its own allocation, is a
// residency of its own, holds exactly its tensors' bytes, and is shared by a
// second load of the same part; a part that matches nothing is refused.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "daemon/broker.h"
#include "tests/daemon/model_files.h"
#include "tests/daemon/sim_broker.h"

namespace distorch {
namespace {

using testing::MakeSimBroker;

using testing::TempDir;

absl::StatusOr<LoadOutcome> LoadPart(Broker& broker, SessionId session, const std::string& path,
                                     std::vector<std::string> prefixes,
                                     const std::string& allocation) {
  LoadArgs args;
  args.session = session;
  args.file_ticket = broker.tickets().PutFile(testing::OpenRead(path));
  args.name = "ckpt";
  args.allocation = allocation;
  args.tensor_prefixes = std::move(prefixes);
  return broker.Load(args, nullptr);
}

std::string StoredBytes(const Resident& r, size_t tensor) {
  std::string out(r.tensors[tensor].nbytes, '\0');
  const TensorSlot& slot = r.layout.slots[tensor];
  REQUIRE(r.arenas[slot.arena]->Read(slot.offset, out.data(), out.size()).ok());
  return out;
}

std::vector<std::string> Names(const Resident& r) {
  std::vector<std::string> out;
  for (const TensorInfo& t : r.tensors) out.push_back(t.name);
  return out;
}

TEST_CASE("Broker::Load places the parts of one file apart", "[broker][part]") {
  const std::string unet0 = testing::PatternBytes(4096, 1), unet1 = testing::PatternBytes(4096, 2),
                    clip = testing::PatternBytes(2048, 3), vae = testing::PatternBytes(1024, 4),
                    misc = testing::PatternBytes(16, 5);
  TempDir dir;
  const std::string path = dir.File("ckpt.safetensors");
  testing::WriteFile(path, testing::SafetensorsBytes({
                               {"alphas_cumprod", "U8", {16}, misc},
                               {"cond_stage_model.t.weight", "U8", {2048}, clip},
                               {"first_stage_model.d.weight", "U8", {1024}, vae},
                               {"model.diffusion_model.in.weight", "U8", {4096}, unet0},
                               {"model.diffusion_model.out.weight", "U8", {4096}, unet1},
                           }));
  std::unique_ptr<Broker> broker = MakeSimBroker("sim:0=64KiB,sim:1=8KiB");
  SessionId a = broker->OpenSession("a", 1);

  absl::StatusOr<LoadOutcome> unet =
      LoadPart(*broker, a, path, {"model.diffusion_model.", "alphas_cumprod"}, "sim:0,*");
  absl::StatusOr<LoadOutcome> text = LoadPart(*broker, a, path, {"cond_stage_model."}, "sim:1,*");
  absl::StatusOr<LoadOutcome> decoder = LoadPart(*broker, a, path, {"first_stage_model."}, "cpu,*");
  REQUIRE(unet.ok());
  REQUIRE(text.ok());
  REQUIRE(decoder.ok());
  CHECK(Names(*unet->resident) == std::vector<std::string>{"alphas_cumprod",
                                                           "model.diffusion_model.in.weight",
                                                           "model.diffusion_model.out.weight"});
  CHECK(unet->resident->tensor_prefixes ==
        std::vector<std::string>{"alphas_cumprod", "model.diffusion_model."});
  CHECK(unet->resident->bytes_total == 16 + 2 * 4096);
  CHECK(StoredBytes(*unet->resident, 1) == unet0);
  CHECK(StoredBytes(*unet->resident, 2) == unet1);
  CHECK(Names(*text->resident) == std::vector<std::string>{"cond_stage_model.t.weight"});
  CHECK(StoredBytes(*text->resident, 0) == clip);
  CHECK(StoredBytes(*decoder->resident, 0) == vae);
  // Three residencies, each on its own devices.
  CHECK(unet->model != text->model);
  CHECK(text->model != decoder->model);
  std::map<DeviceId, uint64_t> held = broker->BrokerBytes();
  CHECK(held[DeviceId::Sim(0)] >= 2 * 4096);
  CHECK(held[DeviceId::Sim(1)] >= 2048);
  CHECK(held[DeviceId::Cpu()] >= 1024);
  std::vector<ModelView> models = broker->Models();
  REQUIRE(models.size() == 3);
  CHECK(absl::StrContains(models[1].residency.key.ToString(), "|part=cond_stage_model."));

  SECTION("a second load of one part shares it, prefixes in any order") {
    SessionId b = broker->OpenSession("b", 2);
    absl::StatusOr<LoadOutcome> again = LoadPart(
        *broker, b, path, {"alphas_cumprod", "model.diffusion_model.", "model.diffusion_model.in."},
        "sim:0,*");
    REQUIRE(again.ok());
    CHECK(again->shared);
    CHECK(again->model == unet->model);
    CHECK(broker->Models().size() == 3);
  }
  SECTION("each part's capacity is checked on its own") {
    // sim:1 (8 KiB) holds the text encoder's arena; the UNet (8 KiB) no
    // longer fits beside it, whatever fits the other devices.
    SessionId b = broker->OpenSession("b", 2);
    absl::StatusOr<LoadOutcome> vae_gpu =
        LoadPart(*broker, b, path, {"first_stage_model."}, "sim:1,*");
    REQUIRE(vae_gpu.ok());  // shared: the part is resident (on cpu)
    CHECK(vae_gpu->shared);
    LoadArgs args;
    args.session = b;
    args.file_ticket = broker->tickets().PutFile(testing::OpenRead(path));
    args.name = "ckpt";
    args.allocation = "sim:1,*";
    args.own_placement = true;
    args.tensor_prefixes = {"model.diffusion_model."};
    absl::StatusOr<LoadOutcome> too_big = broker->Load(args, nullptr);
    REQUIRE(absl::IsResourceExhausted(too_big.status()));
    CHECK(absl::StrContains(too_big.status().message(), "sim:1 is short by"));
  }
  SECTION("a prefix set that matches nothing is refused") {
    absl::StatusOr<LoadOutcome> none = LoadPart(*broker, a, path, {"vae."}, "");
    REQUIRE(absl::IsInvalidArgument(none.status()));
    CHECK(none.status().message() ==
          "model 'ckpt': tensor prefixes 'vae.' match no tensor of the model (its 5 tensor "
          "names begin with 'alphas_cumprod', 'cond_stage_model.', 'first_stage_model.', "
          "'model.'): give prefixes of its tensor names");
  }
  SECTION("a bad prefix is refused before the file is read") {
    absl::StatusOr<LoadOutcome> empty = LoadPart(*broker, a, path, {""}, "");
    REQUIRE(absl::IsInvalidArgument(empty.status()));
    CHECK(absl::StartsWith(empty.status().message(), "tensor prefix 0 is empty"));
  }
  SECTION("Plan plans a part") {
    PlanArgs args;
    args.tensors = unet->resident->tensors;
    args.tensors.push_back(text->resident->tensors[0]);
    args.allocation = "sim:1,*";
    args.tensor_prefixes = {"cond_stage_model."};
    absl::StatusOr<PlanOutcome> plan = broker->Plan(args);
    INFO(plan.status().message());
    REQUIRE(plan.ok());
    CHECK(plan->placement.total_bytes == 2048);
    args.tensor_prefixes = {"model.diffusion_model."};
    CHECK(absl::IsResourceExhausted(broker->Plan(args).status()));
  }
}

TEST_CASE("Broker::Load keeps GGUF type names with a part's tensors", "[broker][part][gguf]") {
  testing::GgufWriter w;
  w.AddString("general.architecture", "flux");
  const std::string q4 = testing::PatternBytes(72, 1), q8 = testing::PatternBytes(102, 2),
                    f32 = testing::PatternBytes(12, 3);
  w.AddTensor({"a.0.attn.weight", {64, 2}, 2 /* Q4_0 */, q4});
  w.AddTensor({"b.0.attn.bias", {3}, 0 /* F32 */, f32});
  w.AddTensor({"b.1.mlp.weight", {32, 3}, 8 /* Q8_0 */, q8});
  TempDir dir;
  const std::string path = dir.File("m.gguf");
  testing::WriteFile(path, w.Bytes());
  std::unique_ptr<Broker> broker = MakeSimBroker("sim:0=64MiB");
  SessionId session = broker->OpenSession("test", 1);
  absl::StatusOr<LoadOutcome> out = LoadPart(*broker, session, path, {"b."}, "sim:0,*");
  REQUIRE(out.ok());
  const Resident& r = *out->resident;
  CHECK(r.tensor_type_names == std::vector<std::string>{"F32", "Q8_0"});
  CHECK(StoredBytes(r, 0) == f32);
  CHECK(StoredBytes(r, 1) == q8);
}

}  // namespace
}  // namespace distorch
