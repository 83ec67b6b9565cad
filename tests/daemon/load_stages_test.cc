// The load pipeline's stages one by one (daemon/load/), in the order a load
// runs them: fd from ticket → header → model key, plan request, residency
// choice, arena layout, copy + seal, outcome. Broker::Load end to end is in
// broker_load_test.cc and broker_part_test.cc.
#include <fcntl.h>

#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "daemon/devices/host_device.h"
#include "daemon/fdpass/ticket_book.h"
#include "daemon/load/copy_and_seal.h"
#include "daemon/load/load_outcome.h"
#include "daemon/load/new_resident.h"
#include "daemon/load/open_model.h"
#include "daemon/load/plan_request.h"
#include "daemon/load/residency_choice.h"
#include "tests/daemon/model_files.h"

namespace distorch {
namespace {

using testing::TempDir;

// Two blocks of 4 F32 each, patterned so a copy can be checked.
std::string TwoBlockModel(const TempDir& dir) {
  const std::string path = dir.File("m.safetensors");
  testing::WriteFile(path, testing::SafetensorsBytes({
                               {"blocks.0.weight", "F32", {4}, testing::PatternBytes(16, 1)},
                               {"blocks.1.weight", "F32", {4}, testing::PatternBytes(16, 2)},
                           }));
  return path;
}

LoadArgs ArgsFor(TicketBook& tickets, const std::string& path) {
  LoadArgs args;
  args.name = "m";
  args.file_ticket = tickets.PutFile(testing::OpenRead(path));
  return args;
}

TEST_CASE("OpenModel reads the header and keys the model", "[load][open]") {
  TempDir dir;
  TicketBook tickets;
  LoadArgs args = ArgsFor(tickets, TwoBlockModel(dir));
  args.tensor_prefixes = {"blocks.1", "blocks.1"};
  absl::StatusOr<OpenedModel> model = OpenModel(tickets, args);
  REQUIRE(model.ok());
  CHECK(model->fd.get() >= 0);
  CHECK(model->dtype.name == "keep");
  CHECK(model->part == std::vector<std::string>{"blocks.1"});
  REQUIRE(model->header.stored.size() == 1);
  CHECK(model->header.stored[0].name == "blocks.1.weight");
  CHECK(model->key.file_identity == model->header.file.identity);
  CHECK(model->key.options == "dtype=keep");
  CHECK(model->key.placement.empty());
  CHECK(model->key.part == model->part);
}

TEST_CASE("OpenModel refuses a bad dtype before it spends the ticket", "[load][open]") {
  TempDir dir;
  TicketBook tickets;
  LoadArgs args = ArgsFor(tickets, TwoBlockModel(dir));
  args.weight_dtype = "fp12";
  absl::StatusOr<OpenedModel> model = OpenModel(tickets, args);
  REQUIRE(!model.ok());
  CHECK(model.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(tickets.TakeFile(args.file_ticket).ok());  // still there
}

TEST_CASE("ReadModelHeader names the model in its errors", "[load][open]") {
  TempDir dir;
  const std::string path = dir.File("bad.safetensors");
  testing::WriteFile(path, "not a model");
  UniqueFd fd = testing::OpenRead(path);
  absl::StatusOr<ModelHeader> header = ReadModelHeader(fd.get(), "flux", {}, WeightDtype{});
  REQUIRE(!header.ok());
  CHECK(std::string(header.status().message()).rfind("model 'flux': ", 0) == 0);
}

PlanInputs Inputs(const std::string& allocation, const std::string& compute) {
  PlanInputs in;
  in.tensors = {TensorInfo{"blocks.0.weight", DType::kF32, {4}, 8, 16}};
  in.allocation = allocation;
  in.compute = compute;
  return in;
}

TEST_CASE("BuildPlanRequest resolves the compute device", "[load][plan]") {
  const DeviceId fallback = DeviceId::Sim(1);
  SECTION("neither given: the default, and the whole model there") {
    absl::StatusOr<PlanRequest> r = BuildPlanRequest(Inputs("", ""), fallback, {});
    REQUIRE(r.ok());
    CHECK(r->compute == fallback);
    REQUIRE(r->alloc.entries.size() == 1);
    CHECK(r->alloc.entries[0].device == fallback);
    CHECK(r->alloc.entries[0].is_rest);
  }
  SECTION("the allocation's EXPERT#COMPUTE") {
    absl::StatusOr<PlanRequest> r =
        BuildPlanRequest(Inputs("sim:0,1gb;cpu,*#sim:0", ""), fallback, {});
    REQUIRE(r.ok());
    CHECK(r->compute == DeviceId::Sim(0));
  }
  SECTION("the request's, when it agrees") {
    absl::StatusOr<PlanRequest> r = BuildPlanRequest(Inputs("cpu,*", "sim:0"), fallback, {});
    REQUIRE(r.ok());
    CHECK(r->compute == DeviceId::Sim(0));
  }
  SECTION("a disagreement is refused") {
    absl::StatusOr<PlanRequest> r =
        BuildPlanRequest(Inputs("sim:0,1gb;cpu,*#sim:0", "sim:1"), fallback, {});
    REQUIRE(!r.ok());
    CHECK(r.status().message() ==
          "the allocation computes on sim:0 but the request on sim:1: give the same compute "
          "device to both");
  }
}

std::shared_ptr<const Resident> PlacedAs(const std::string& allocation,
                                         const std::string& compute) {
  auto r = std::make_shared<Resident>();
  r->allocation = allocation;
  r->compute_device = compute;
  return r;
}

TEST_CASE("ChooseResidency shares, or keys a residency of its own", "[load][choice]") {
  const ModelKey model{"1:2:3:4", "dtype=keep", "", {}};
  ModelKey own = model;
  own.placement = "cpu,*@sim:1";
  std::map<ResidencyId, std::shared_ptr<const Resident>> residents = {
      {7, PlacedAs("sim:0,*", "sim:0")}, {8, PlacedAs("cpu,*", "sim:1")}};
  FindResidentFn find = [&](ResidencyId id) {
    return residents.count(id) ? residents[id] : nullptr;
  };

  SECTION("nothing resident: the shared key") {
    ResidencyChoice c = ChooseResidency({}, model, true, "cpu,*", "sim:1", find);
    CHECK(!c.attach.has_value());
    CHECK(c.new_key == model);
  }
  SECTION("without own_placement the shared residency wins") {
    ResidencyChoice c = ChooseResidency({{8, own}, {7, model}}, model, false, "x", "y", find);
    REQUIRE(c.attach.has_value());
    CHECK(c.attach->first == 7);
  }
  SECTION("own_placement attaches only to an equal placement") {
    ResidencyChoice c =
        ChooseResidency({{7, model}, {8, own}}, model, true, "cpu,*", "sim:1", find);
    REQUIRE(c.attach.has_value());
    CHECK(c.attach->first == 8);
  }
  SECTION("own_placement with none equal: a key carrying the placement") {
    ResidencyChoice c = ChooseResidency({{7, model}}, model, true, "cpu,*", "sim:1", find);
    CHECK(!c.attach.has_value());
    CHECK(c.new_key == own);
  }
  SECTION("own_placement with no shared residency left: the shared key") {
    ModelKey other = model;
    other.placement = "sim:0,*@sim:0";
    ResidencyChoice c = ChooseResidency({{7, other}}, model, true, "cpu,*", "sim:1", find);
    CHECK(!c.attach.has_value());
    CHECK(c.new_key == model);
  }
}

TEST_CASE("SharedPlacementNote says when a request was not applied", "[load][choice]") {
  std::shared_ptr<const Resident> r = PlacedAs("sim:0,*", "sim:0");
  CHECK(SharedPlacementNote(*r, "", "", "cpu,*", "sim:0").empty());
  CHECK(SharedPlacementNote(*r, "sim:0,*", "", "sim:0,*", "sim:1").empty());
  CHECK(SharedPlacementNote(*r, "cpu,*", "", "cpu,*", "sim:0") ==
        "already resident with allocation sim:0,* (compute sim:0); the requested cpu,* "
        "(compute sim:0) was not applied: one copy is shared (ask with own_placement for a "
        "residency of its own)");
}

// Stages after the plan on one host device: layout, allocate, copy, seal, outcome.
TEST_CASE("A new resident is laid out, copied, sealed and offered", "[load][copy]") {
  TempDir dir;
  TicketBook tickets;
  const std::string path = TwoBlockModel(dir);
  LoadArgs args = ArgsFor(tickets, path);
  absl::StatusOr<OpenedModel> model = OpenModel(tickets, args);
  REQUIRE(model.ok());
  PlanInputs inputs;
  inputs.tensors = model->header.stored;
  inputs.allocation = "cpu,*";
  std::unique_ptr<HostDevice> cpu = HostDevice::Cpu(0);
  absl::StatusOr<PlanRequest> request = BuildPlanRequest(
      inputs, DeviceId::Cpu(), {DeviceCapacity{DeviceId::Cpu(), 1ULL << 30, 1ULL << 30}});
  REQUIRE(request.ok());
  absl::StatusOr<Placement> placement = PlanPlacement(*request);
  REQUIRE(placement.ok());

  std::shared_ptr<Resident> resident =
      LayOutResident("m", *model, *request, *placement, LayoutSettings{2, 0});
  CHECK(resident->allocation == "cpu,*");
  CHECK(resident->compute_device == "cpu");
  CHECK(resident->bytes_total == 32);
  CHECK(resident->tensors.size() == 2);
  CHECK(model->header.file.tensors.size() == 2);  // kept for the copy
  for (const ArenaPlan& spec : resident->layout.arenas) {
    absl::StatusOr<std::unique_ptr<Arena>> arena = cpu->Allocate(spec.bytes, "m");
    REQUIRE(arena.ok());
    resident->arenas.push_back(*std::move(arena));
  }
  CHECK(ArenaBytes(*resident).at(DeviceId::Cpu()) >= 32);

  uint64_t last = 0;
  REQUIRE(CopyAndSeal(model->fd.get(), *resident, model->header.file.tensors, 2,
                      [&](uint64_t loaded, uint64_t) { last = loaded; })
              .ok());
  CHECK(resident->bytes_loaded == 32);
  std::string got(16, '\0');
  const TensorSlot& slot = resident->layout.slots[1];
  REQUIRE(resident->arenas[slot.arena]->Read(slot.offset, got.data(), got.size()).ok());
  CHECK(got == testing::PatternBytes(16, 2));
  for (const auto& arena : resident->arenas) {
    CHECK((fcntl(arena->Export().memfd, F_GET_SEALS) & F_SEAL_WRITE) != 0);
  }

  resident->id = 5;
  LoadOutcome outcome = MakeLoadOutcome(tickets, resident, /*lease=*/9, /*shared=*/false);
  CHECK(outcome.model == 5);
  CHECK(outcome.lease == 9);
  absl::StatusOr<FdOffer> offer = tickets.TakeOffer(outcome.arena_ticket);
  REQUIRE(offer.ok());
  CHECK(offer->fds.size() == resident->arenas.size());
  (void)last;
}

}  // namespace
}  // namespace distorch
