// A part of a model file (LoadRequest.tensor_prefixes): the canonical prefix
// set, the tensors it selects, the planner on a part, and parts as residencies
// of their own in the registry.
#include "distorch/tensor_part.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "distorch/planner.h"
#include "distorch/registry.h"
#include "distorch/units.h"

namespace distorch {
namespace {

using Names = std::vector<std::string>;

// A checkpoint laid out as ComfyUI's SD1.x ones are: UNet, text encoder, VAE,
// and a stray top-level tensor, back to back in the file.
std::vector<TensorInfo> Checkpoint() {
  std::vector<std::pair<std::string, uint64_t>> layout = {
      {"alphas_cumprod", 4096},
      {"cond_stage_model.transformer.embeddings.weight", 2 * kMiB},
      {"cond_stage_model.transformer.layers.0.mlp.weight", 2 * kMiB},
      {"first_stage_model.decoder.conv_in.weight", 1 * kMiB},
      {"first_stage_model.encoder.conv_in.weight", 1 * kMiB},
      {"model.diffusion_model.input_blocks.0.weight", 8 * kMiB},
      {"model.diffusion_model.input_blocks.1.weight", 8 * kMiB},
      {"model.diffusion_model.out.weight", 8 * kMiB},
  };
  std::vector<TensorInfo> out;
  uint64_t offset = 0;
  for (const auto& [name, bytes] : layout) {
    TensorInfo t;
    t.name = name;
    t.dtype = DType::kU8;
    t.shape = {static_cast<int64_t>(bytes)};
    t.file_offset = offset;
    t.nbytes = bytes;
    offset += bytes;
    out.push_back(t);
  }
  return out;
}

Names Selected(const std::vector<TensorInfo>& tensors, const Names& prefixes) {
  absl::StatusOr<std::vector<size_t>> part = SelectTensorPart(tensors, prefixes);
  REQUIRE(part.ok());
  Names out;
  for (size_t i : *part) out.push_back(tensors[i].name);
  return out;
}

TEST_CASE("CanonicalTensorPrefixes sorts, dedupes and drops covered prefixes", "[part]") {
  auto [given, want] = GENERATE(table<Names, Names>({
      {{}, {}},
      {{"vae."}, {"vae."}},
      {{"b.", "a.", "b."}, {"a.", "b."}},
      {{"a.b.", "a.", "c"}, {"a.", "c"}},
      {{"conditioner.embedders.1.model.", "conditioner.embedders.0.transformer."},
       {"conditioner.embedders.0.transformer.", "conditioner.embedders.1.model."}},
  }));
  absl::StatusOr<Names> canonical = CanonicalTensorPrefixes(given);
  REQUIRE(canonical.ok());
  CHECK(*canonical == want);
}

TEST_CASE("CanonicalTensorPrefixes bounds the set", "[part]") {
  SECTION("an empty prefix") {
    absl::StatusOr<Names> c = CanonicalTensorPrefixes({"vae.", ""});
    REQUIRE(absl::IsInvalidArgument(c.status()));
    CHECK(c.status().message() ==
          "tensor prefix 1 is empty: give the start of tensor names (e.g. "
          "'first_stage_model.'), or no prefixes for the whole file");
  }
  SECTION("too many") {
    Names many;
    for (size_t i = 0; i <= kMaxTensorPrefixes; ++i) many.push_back("p" + std::to_string(i));
    absl::StatusOr<Names> c = CanonicalTensorPrefixes(many);
    REQUIRE(absl::IsInvalidArgument(c.status()));
    CHECK(c.status().message() ==
          "65 tensor prefixes given; at most 64 are allowed: use shorter prefixes that cover "
          "several");
    many.pop_back();
    CHECK(CanonicalTensorPrefixes(many).ok());
  }
  SECTION("too long") {
    absl::StatusOr<Names> c =
        CanonicalTensorPrefixes({std::string(kMaxTensorPrefixBytes + 1, 'a')});
    REQUIRE(absl::IsInvalidArgument(c.status()));
    CHECK(c.status().message() == "tensor prefix 0 is 1025 bytes long; at most 1024 are allowed");
    CHECK(CanonicalTensorPrefixes({std::string(kMaxTensorPrefixBytes, 'a')}).ok());
  }
  SECTION("a control character") {
    absl::StatusOr<Names> c = CanonicalTensorPrefixes({"a.\nb"});
    REQUIRE(absl::IsInvalidArgument(c.status()));
    CHECK(c.status().message() ==
          "tensor prefix 0 contains a control character (byte 10): tensor names have none");
  }
}

TEST_CASE("SelectTensorPart keeps the tensors under the prefixes, in file order", "[part]") {
  const std::vector<TensorInfo> ckpt = Checkpoint();
  CHECK(Selected(ckpt, {}).size() == ckpt.size());
  CHECK(Selected(ckpt, {"first_stage_model."}) ==
        Names{"first_stage_model.decoder.conv_in.weight",
              "first_stage_model.encoder.conv_in.weight"});
  CHECK(Selected(ckpt, {"alphas_cumprod", "model.diffusion_model."}) ==
        Names{"alphas_cumprod", "model.diffusion_model.input_blocks.0.weight",
              "model.diffusion_model.input_blocks.1.weight", "model.diffusion_model.out.weight"});
  // a prefix that matches nothing is fine while another one matches
  CHECK(Selected(ckpt, {"cond_stage_model.", "text_encoders."}).size() == 2);
}

TEST_CASE("SelectTensorPart refuses a prefix set that matches no tensor", "[part]") {
  absl::StatusOr<std::vector<size_t>> part =
      SelectTensorPart(Checkpoint(), {"vae.", "text_encoders."});
  REQUIRE(absl::IsInvalidArgument(part.status()));
  CHECK(part.status().message() ==
        "tensor prefixes 'vae.', 'text_encoders.' match no tensor of the model (its 8 tensor "
        "names begin with 'alphas_cumprod', 'cond_stage_model.', 'first_stage_model.', "
        "'model.'): give prefixes of its tensor names");
  CHECK(TensorPartLabel({"a.", "b."}) == "a.,b.");
  CHECK(TensorPartLabel({}).empty());
}

TEST_CASE("A part is planned as a model of its own", "[part][planner]") {
  const std::vector<TensorInfo> ckpt = Checkpoint();
  PlanRequest request;
  absl::StatusOr<std::vector<size_t>> part = SelectTensorPart(ckpt, {"cond_stage_model."});
  REQUIRE(part.ok());
  for (size_t i : *part) request.tensors.push_back(ckpt[i]);
  request.compute = DeviceId::Cuda(0);
  request.devices = {DeviceCapacity{DeviceId::Cpu(), 64 * kGiB, 64 * kGiB, 0},
                     DeviceCapacity{DeviceId::Cuda(0), 3 * kMiB, 3 * kMiB, 0}};
  AllocEntry gpu;
  gpu.device = DeviceId::Cuda(0);
  gpu.bytes = 2 * kMiB;
  AllocEntry rest;
  rest.device = DeviceId::Cpu();
  rest.is_rest = true;
  request.alloc.mode = AllocMode::kBytes;
  request.alloc.entries = {gpu, rest};
  absl::StatusOr<Placement> placement = PlanPlacement(request);
  REQUIRE(placement.ok());
  // Its own 4 MiB, not the checkpoint's: the first 2 MiB on cuda:0, the rest on cpu.
  CHECK(placement->total_bytes == 4 * kMiB);
  REQUIRE(placement->blocks.size() == 2);
  CHECK(placement->block_device[0] == DeviceId::Cuda(0));
  CHECK(placement->block_device[1] == DeviceId::Cpu());
  // The whole checkpoint would not fit the same 3 MiB GPU with cuda:0,*.
  request.tensors = ckpt;
  request.alloc.entries = {rest};
  request.alloc.entries[0].device = DeviceId::Cuda(0);
  CHECK(absl::IsResourceExhausted(PlanPlacement(request).status()));
}

TEST_CASE("Parts of one file are residencies of their own, one part shared", "[part][registry]") {
  Registry registry(absl::Seconds(30));
  SessionId a = registry.OpenSession("a", 1);
  SessionId b = registry.OpenSession("b", 2);
  auto key = [](Names part) { return ModelKey{"1:2:3:4", "dtype=keep", "", std::move(part)}; };
  auto unet = registry.Acquire(a, key({"model.diffusion_model."}), "ckpt", false, {});
  auto clip = registry.Acquire(a, key({"cond_stage_model."}), "ckpt", false, {});
  auto whole = registry.Acquire(a, key({}), "ckpt", false, {});
  REQUIRE((unet.ok() && clip.ok() && whole.ok()));
  CHECK((unet->must_load && clip->must_load && whole->must_load));
  CHECK(unet->residency != clip->residency);
  auto clip_b = registry.Acquire(b, key({"cond_stage_model."}), "ckpt", false, {});
  REQUIRE(clip_b.ok());
  CHECK_FALSE(clip_b->must_load);
  CHECK(clip_b->residency == clip->residency);
  CHECK(key({"a.", "b."}).ToString() == "1:2:3:4|dtype=keep|part=a.,b.");
  ModelKey own = key({"a."});
  own.placement = "cpu,*@cpu";
  CHECK(own.ToString() == "1:2:3:4|dtype=keep|part=a.|cpu,*@cpu");
  CHECK_FALSE(key({"a."}).SameModel(key({})));
}

}  // namespace
}  // namespace distorch
