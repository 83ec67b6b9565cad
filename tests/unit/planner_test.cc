// The placement rules of DESIGN.md §5, one case per rule, with the exact
// texts users read. Random models and invariants: planner_property_test.cc.
#include "distorch/planner.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "distorch/alloc_spec.h"
#include "distorch/units.h"

namespace distorch {
namespace {

// Tensors laid out back to back in the file, in the order given.
std::vector<TensorInfo> Model(const std::vector<std::pair<std::string, uint64_t>>& tensors) {
  std::vector<TensorInfo> out;
  uint64_t offset = 0;
  for (const auto& [name, bytes] : tensors) {
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

// `count` one-tensor blocks "blocks.I" of `bytes` each.
std::vector<TensorInfo> Uniform(int count, uint64_t bytes) {
  std::vector<std::pair<std::string, uint64_t>> t;
  for (int i = 0; i < count; ++i) t.push_back({"blocks." + std::to_string(i) + ".weight", bytes});
  return Model(t);
}

DeviceCapacity Cap(DeviceId id, uint64_t free, uint64_t reserve = 0) {
  return DeviceCapacity{id, free, free, reserve};
}

AllocEntry Bytes(DeviceId d, uint64_t b) {
  AllocEntry e;
  e.device = d;
  e.bytes = b;
  return e;
}
AllocEntry Ratio(DeviceId d, double r) {
  AllocEntry e;
  e.device = d;
  e.ratio = r;
  return e;
}
AllocEntry Fraction(DeviceId d, double f) {
  AllocEntry e;
  e.device = d;
  e.fraction = f;
  return e;
}
AllocEntry Rest(DeviceId d) {
  AllocEntry e;
  e.device = d;
  e.is_rest = true;
  return e;
}

AllocSpec Spec(AllocMode mode, std::vector<AllocEntry> entries) {
  AllocSpec spec;
  spec.mode = mode;
  spec.entries = std::move(entries);
  spec.implicit_rest_to_cpu = true;
  for (const AllocEntry& e : spec.entries) spec.implicit_rest_to_cpu &= !e.is_rest;
  return spec;
}

const DeviceId kCpu = DeviceId::Cpu();
const DeviceId kGpu0 = DeviceId::Cuda(0);
const DeviceId kGpu1 = DeviceId::Cuda(1);

PlanRequest Request(std::vector<TensorInfo> tensors, AllocSpec spec, DeviceId compute = kGpu0) {
  PlanRequest r;
  r.tensors = std::move(tensors);
  r.alloc = std::move(spec);
  r.compute = compute;
  r.devices = {Cap(kCpu, 64 * kGiB), Cap(kGpu0, 24 * kGiB), Cap(kGpu1, 24 * kGiB)};
  return r;
}

// "cuda:0 x3, cpu x2": the device of each block in model order, run-length
// coded.
std::string Runs(const Placement& p) {
  std::string out;
  for (size_t i = 0; i < p.block_device.size();) {
    size_t j = i;
    while (j < p.block_device.size() && p.block_device[j] == p.block_device[i]) ++j;
    if (!out.empty()) out += ", ";
    out += p.block_device[i].ToString() + " x" + std::to_string(j - i);
    i = j;
  }
  return out;
}

const DevicePlan* Find(const Placement& p, DeviceId d) {
  for (const DevicePlan& plan : p.devices)
    if (plan.device == d) return &plan;
  return nullptr;
}

TEST_CASE("GroupIntoBlocks names blocks by module and orders them by file offset", "[planner]") {
  std::vector<TensorInfo> t = Model({{"b.attn.weight", 10},
                                     {"a.bias", 4},
                                     {"a.weight", 8},
                                     {"b.attn.bias", 2},
                                     {"logit_scale", 1},
                                     {"empty.x", 0}});
  std::swap(t[0], t[2]);  // list order != file order
  std::vector<Block> blocks = GroupIntoBlocks(t);
  REQUIRE(blocks.size() == 4);
  CHECK(blocks[0].name == "b.attn");
  CHECK(blocks[0].bytes == 12);
  CHECK(blocks[0].tensor_indices == std::vector<size_t>{2, 3});  // file order
  CHECK(blocks[1].name == "a");
  CHECK(blocks[1].tensor_indices == std::vector<size_t>{1, 0});
  CHECK(blocks[2].name == "logit_scale");  // no dot: its own block
  CHECK(blocks[3].name == "empty");
  CHECK(blocks[3].bytes == 0);
  CHECK(GroupIntoBlocks({}).empty());
}

TEST_CASE("GroupIntoBlocks sorts long lists out of file order", "[planner]") {
  // 3,000 tensors of up to 4 GiB (offsets past 2^40: several radix passes),
  // every fifth one empty so offsets tie, listed in a scrambled order.
  std::vector<TensorInfo> t;
  uint64_t offset = 0;
  for (int i = 0; i < 3000; ++i) {
    TensorInfo info;
    info.name = "m." + std::to_string(i / 3) + (i % 2 ? ".w" : ".b");
    info.file_offset = offset;
    info.nbytes = i % 5 == 0 ? 0 : (1 + (i * 7919) % 4096) * kMiB;
    offset += info.nbytes;
    t.push_back(info);
  }
  for (size_t i = 0; i < t.size(); ++i) std::swap(t[i], t[(i * 2654435761u) % t.size()]);

  bool scrambled = false;
  for (size_t i = 1; i < t.size(); ++i) {
    scrambled |= t[i - 1].file_offset > t[i].file_offset;
  }
  REQUIRE(scrambled);

  // The reference: a comparison sort on (offset, list index), then grouping.
  std::vector<std::pair<uint64_t, size_t>> order;
  for (size_t i = 0; i < t.size(); ++i) order.push_back({t[i].file_offset, i});
  std::sort(order.begin(), order.end());
  std::vector<std::string> names;
  std::vector<std::vector<size_t>> members;
  for (const auto& [off, i] : order) {
    std::string name = t[i].name.substr(0, t[i].name.rfind('.'));
    auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) {
      names.push_back(name);
      members.emplace_back();
      it = names.end() - 1;
    }
    members[it - names.begin()].push_back(i);
  }
  std::vector<Block> blocks = GroupIntoBlocks(t);
  REQUIRE(blocks.size() == names.size());
  for (size_t b = 0; b < blocks.size(); ++b) {
    CAPTURE(b);
    CHECK(blocks[b].name == names[b]);
    CHECK(blocks[b].tensor_indices == members[b]);
  }
}

TEST_CASE("Bytes mode puts the FIRST quota of the model on the first device", "[planner]") {
  AllocSpec spec = Spec(AllocMode::kBytes, {Bytes(kGpu0, 2 * kGiB + kGiB / 2), Rest(kCpu)});
  absl::StatusOr<Placement> p = PlanPlacement(Request(Uniform(10, kGiB / 2), spec));
  REQUIRE(p.ok());
  CHECK(Runs(*p) == "cuda:0 x5, cpu x5");
  REQUIRE(p->devices.size() == 2);
  CHECK(p->devices[0].device == kGpu0);
  CHECK(p->devices[0].quota == 2 * kGiB + kGiB / 2);
  CHECK(p->devices[0].bytes == 2 * kGiB + kGiB / 2);
  CHECK(p->devices[1].quota == 2 * kGiB + kGiB / 2);
  CHECK(p->devices[1].blocks == 5);
  CHECK(p->notes.empty());
  CHECK(p->total_bytes == 5 * kGiB);

  SECTION("the parser's string gives the same plan") {
    absl::StatusOr<AllocSpec> parsed = ParseAllocation("cuda:0,2.5gb;cpu,*");
    REQUIRE(parsed.ok());
    absl::StatusOr<Placement> q = PlanPlacement(Request(Uniform(10, kGiB / 2), *parsed));
    REQUIRE(q.ok());
    CHECK(q->block_device == p->block_device);
  }
}

TEST_CASE("Devices after '*' take the end of the model", "[planner]") {
  AllocSpec spec =
      Spec(AllocMode::kBytes, {Bytes(kGpu0, kGiB), Rest(kCpu), Bytes(kGpu1, 2 * kGiB)});
  absl::StatusOr<Placement> p = PlanPlacement(Request(Uniform(8, kGiB), spec));
  REQUIRE(p.ok());
  CHECK(Runs(*p) == "cuda:0 x1, cpu x5, cuda:1 x2");
}

TEST_CASE("A block bigger than a quota goes to the next device that can take it", "[planner]") {
  std::vector<TensorInfo> t = Model({{"embed.weight", 3 * kGiB},
                                     {"blocks.0.weight", kGiB},
                                     {"blocks.1.weight", kGiB},
                                     {"blocks.2.weight", kGiB}});
  AllocSpec spec =
      Spec(AllocMode::kBytes, {Bytes(kGpu0, 2 * kGiB), Bytes(kGpu1, 4 * kGiB), Rest(kCpu)});
  absl::StatusOr<Placement> p = PlanPlacement(Request(t, spec));
  REQUIRE(p.ok());
  CHECK(Runs(*p) == "cuda:1 x2, cpu x2");
  CHECK(p->notes == std::vector<std::string>{"cuda:0 takes no blocks: the next one, "
                                             "'embed' (3.00 GiB), is bigger than "
                                             "its quota allows (2.00 GiB)"});
}

TEST_CASE("Ratio mode splits the model by shares", "[planner]") {
  SECTION("percentages that add up to 100") {
    AllocSpec spec = Spec(AllocMode::kRatio, {Ratio(kGpu0, 25), Ratio(kCpu, 75)});
    absl::StatusOr<Placement> p = PlanPlacement(Request(Uniform(8, kGiB), spec));
    REQUIRE(p.ok());
    CHECK(Runs(*p) == "cuda:0 x2, cpu x6");
    CHECK(p->notes.empty());
  }
  SECTION("'*' gets the remaining share") {
    AllocSpec spec = Spec(AllocMode::kRatio, {Ratio(kGpu0, 25), Rest(kGpu1)});
    absl::StatusOr<Placement> p = PlanPlacement(Request(Uniform(8, kGiB), spec));
    REQUIRE(p.ok());
    CHECK(Runs(*p) == "cuda:0 x2, cuda:1 x6");
    CHECK(p->devices[1].quota == 6 * kGiB);
  }
  SECTION("shares are normalised and cover the model: nothing falls to cpu") {
    AllocSpec spec = Spec(AllocMode::kRatio, {Ratio(kGpu0, 1), Ratio(kGpu1, 2)});
    absl::StatusOr<Placement> p = PlanPlacement(Request(Uniform(10, kGiB), spec));
    REQUIRE(p.ok());
    CHECK(Runs(*p) == "cuda:0 x3, cuda:1 x7");  // 3.33 GiB rounds to 3 blocks
    CHECK(Find(*p, kCpu) == nullptr);
    CHECK(p->notes == std::vector<std::string>{"the ratio shares add up to 3%; scaled to 100%"});
  }
}

TEST_CASE("Fraction mode takes a fraction of the device's total memory", "[planner]") {
  AllocSpec spec = Spec(AllocMode::kFraction, {Fraction(kGpu0, 0.25), Rest(kCpu)});
  PlanRequest r = Request(Uniform(10, kGiB), spec);
  r.devices[1].free = 12 * kGiB;  // total stays 24 GiB: 6 GiB quota
  absl::StatusOr<Placement> p = PlanPlacement(r);
  REQUIRE(p.ok());
  CHECK(p->devices[0].quota == 6 * kGiB);
  CHECK(Runs(*p) == "cuda:0 x6, cpu x4");
}

TEST_CASE("Virtual VRAM moves bytes off compute onto donors in order", "[planner]") {
  AllocSpec spec;
  spec.mode = AllocMode::kVirtualVram;
  spec.virtual_vram = VirtualVram{kGpu0, 3 * kGiB, {kGpu1, kCpu}};
  PlanRequest r = Request(Uniform(8, kGiB), spec);
  r.devices[2] = Cap(kGpu1, 2 * kGiB);

  absl::StatusOr<Placement> p = PlanPlacement(r);
  REQUIRE(p.ok());
  CHECK(Runs(*p) == "cuda:0 x5, cuda:1 x2, cpu x1");
  CHECK(p->devices[0].quota == 5 * kGiB);
  CHECK(p->devices[1].quota == 2 * kGiB);
  CHECK(p->notes.empty());

  SECTION("donors short of room leave the rest on compute, and say so") {
    r.devices[0] = Cap(kCpu, kGiB / 2);
    absl::StatusOr<Placement> q = PlanPlacement(r);
    REQUIRE(q.ok());
    CHECK(Runs(*q) == "cuda:0 x6, cuda:1 x2");
    CHECK(q->notes == std::vector<std::string>{"the donors can take 2.50 GiB of the 3.00 "
                                               "GiB virtual VRAM; the other "
                                               "512.00 MiB stay on cuda:0",
                                               "cpu takes no blocks: the next one, "
                                               "'blocks.7' (1.00 GiB), is bigger "
                                               "than its quota allows (512.00 MiB)"});
  }
  SECTION("the request computes where the allocation says") {
    r.compute = kGpu1;
    absl::StatusOr<Placement> q = PlanPlacement(r);
    CHECK(q.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(q.status().message() ==
          "the allocation computes on cuda:0 but the request on cuda:1: give "
          "the same compute "
          "device to both");
  }
}

TEST_CASE("With no '*' the rest goes to cpu, and the plan says so", "[planner]") {
  AllocSpec spec = Spec(AllocMode::kBytes, {Bytes(kGpu0, 2 * kGiB)});
  PlanRequest r = Request(Uniform(5, kGiB), spec);
  absl::StatusOr<Placement> p = PlanPlacement(r);
  REQUIRE(p.ok());
  CHECK(Runs(*p) == "cuda:0 x2, cpu x3");
  CHECK(p->notes ==
        std::vector<std::string>{"no '*' in the allocation: the rest (3.00 GiB) goes to cpu"});

  SECTION("a listed cpu becomes the rest device") {
    r.alloc = Spec(AllocMode::kBytes, {Bytes(kCpu, kGiB), Bytes(kGpu0, 2 * kGiB)});
    absl::StatusOr<Placement> q = PlanPlacement(r);
    REQUIRE(q.ok());
    CHECK(Runs(*q) == "cpu x3, cuda:0 x2");
    CHECK(q->notes == std::vector<std::string>{"no '*' in the allocation: the rest goes to cpu, "
                                               "which takes 3.00 GiB, more than the 1.00 GiB "
                                               "written for it"});
  }
  SECTION("cpu must exist only when something lands on it") {
    r.devices.erase(r.devices.begin());
    absl::StatusOr<Placement> q = PlanPlacement(r);
    CHECK(q.status().code() == absl::StatusCode::kNotFound);
    CHECK(q.status().message() ==
          "device cpu is not on this host (have: cuda:0, cuda:1): the "
          "allocation has no '*', so "
          "the rest (3.00 GiB) goes to cpu; add '*' to one entry");
    r.alloc = Spec(AllocMode::kBytes, {Bytes(kGpu0, 5 * kGiB)});
    absl::StatusOr<Placement> fits = PlanPlacement(r);
    REQUIRE(fits.ok());
    CHECK(fits->devices.size() == 1);
  }
}

TEST_CASE("Pinned and tiny blocks stay on compute and count against its quota", "[planner]") {
  std::vector<TensorInfo> t = Model({{"img_in.weight", kGiB},
                                     {"img_in_2.weight", kGiB},
                                     {"norm.weight", 1024},
                                     {"blocks.0.a.weight", kGiB},
                                     {"blocks.0.a.bias", 0},
                                     {"final.linear.weight", kGiB},
                                     {"scale", 0}});
  AllocSpec spec =
      Spec(AllocMode::kBytes, {Bytes(kGpu1, kGiB), Bytes(kGpu0, 2 * kGiB), Rest(kCpu)});
  PlanRequest r = Request(t, spec);
  r.pins = {"img_in", "final"};
  absl::StatusOr<Placement> p = PlanPlacement(r);
  REQUIRE(p.ok());
  using R = PlacementReason;
  CHECK(p->block_reason ==
        std::vector<R>{R::kPinned, R::kQuota, R::kTiny, R::kQuota, R::kPinned, R::kTiny});
  // cuda:0's 2 GiB: 2 GiB of pins leave no room for a run.
  CHECK(Runs(*p) == "cuda:0 x1, cuda:1 x1, cuda:0 x1, cpu x1, cuda:0 x2");
  const DevicePlan* gpu0 = Find(*p, kGpu0);
  REQUIRE(gpu0 != nullptr);
  CHECK(gpu0->bytes == 2 * kGiB + 1024);
  CHECK(gpu0->blocks == 4);
  CHECK(p->notes == std::vector<std::string>{
                        "cuda:0's pinned and tiny blocks (2.00 GiB) exceed its quota (2.00 "
                        "GiB): it "
                        "holds only them",
                        "2 pinned and 2 tiny blocks (2.00 GiB) stay on cuda:0"});

  SECTION("many pins match the same way") {
    r.pins = {"x", "img", "img_in.weight", "blocks.0.a.b", "a", "b", "c", "d", "final", "img_in"};
    absl::StatusOr<Placement> q = PlanPlacement(r);
    REQUIRE(q.ok());
    CHECK(q->block_reason == p->block_reason);
  }
  SECTION("pins alone too big for compute cannot spill") {
    r.devices[1] = Cap(kGpu0, kGiB);
    r.allow_spill = true;
    absl::StatusOr<Placement> q = PlanPlacement(r);
    CHECK(q.status().message() ==
          "cuda:0 is short by 1.00 GiB: placing 2.00 GiB, 1.00 GiB available "
          "(free 1.00 GiB - reserve 0 B)");
  }
  SECTION("an unlisted compute device holds only them, listed last") {
    r.alloc = Spec(AllocMode::kBytes, {Bytes(kGpu1, 4 * kGiB), Rest(kCpu)});
    absl::StatusOr<Placement> q = PlanPlacement(r);
    REQUIRE(q.ok());
    REQUIRE(q->devices.size() == 3);
    CHECK(q->devices[2].device == kGpu0);
    CHECK(q->devices[2].quota == 0);
    CHECK(q->devices[2].bytes == 2 * kGiB + 1024);
  }
}

TEST_CASE("Over-subscription names the short device and the missing bytes", "[planner]") {
  const DeviceId sim1 = DeviceId::Sim(1);
  AllocSpec spec = Spec(AllocMode::kBytes, {Bytes(sim1, 3 * kGiB), Rest(kCpu)});
  PlanRequest r = Request(Uniform(6, kGiB), spec, kCpu);
  r.devices.push_back(DeviceCapacity{sim1, 8 * kGiB, 2 * kGiB, kGiB / 2});
  absl::StatusOr<Placement> p = PlanPlacement(r);
  CHECK(p.status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(p.status().message() ==
        "sim:1 is short by 1.50 GiB: placing 3.00 GiB, 1.50 GiB available "
        "(free 2.00 GiB - "
        "reserve 512.00 MiB); lower the allocation or "
        "allow spilling to cpu");

  SECTION("allow_spill moves the excess to the rest device") {
    r.allow_spill = true;
    absl::StatusOr<Placement> q = PlanPlacement(r);
    REQUIRE(q.ok());
    CHECK(Runs(*q) == "sim:1 x1, cpu x5");
    CHECK(q->block_reason[1] == PlacementReason::kSpill);
    CHECK(q->block_reason[2] == PlacementReason::kSpill);
    CHECK(q->notes == std::vector<std::string>{"sim:1 is short by 1.50 GiB: 2 blocks (2.00 GiB) "
                                               "spilled to cpu"});
  }
  SECTION("a rest device short after the spill fails, naming it") {
    r.allow_spill = true;
    r.devices[0] = Cap(kCpu, 4 * kGiB);
    absl::StatusOr<Placement> q = PlanPlacement(r);
    CHECK(q.status().code() == absl::StatusCode::kResourceExhausted);
    CHECK(q.status().message() ==
          "cpu is short by 1.00 GiB: placing 5.00 GiB (2.00 GiB of it spilled "
          "from sim:1), "
          "4.00 GiB available (free 4.00 GiB - reserve 0 B); give "
          "the other devices more of the model or free memory on cpu");
  }
}

TEST_CASE("Devices not on the host are NotFound, listing what exists", "[planner]") {
  PlanRequest r = Request(Uniform(2, kGiB),
                          Spec(AllocMode::kBytes, {Bytes(DeviceId::Cuda(3), kGiB), Rest(kCpu)}));
  r.devices = {Cap(DeviceId::Sim(0), kGiB), Cap(kCpu, kGiB), Cap(kGpu0, kGiB)};
  absl::StatusOr<Placement> p = PlanPlacement(r);
  CHECK(p.status().code() == absl::StatusCode::kNotFound);
  CHECK(p.status().message() == "device cuda:3 is not on this host (have: cpu, cuda:0, sim:0)");
  r.compute = DeviceId::Cuda(2);
  CHECK(PlanPlacement(r).status().message() ==
        "compute device cuda:2 is not on this host (have: cpu, cuda:0, sim:0)");
}

TEST_CASE("Edge cases: empty and zero-byte models, bad specs", "[planner]") {
  AllocSpec spec = Spec(AllocMode::kBytes, {Bytes(kGpu0, kGiB), Rest(kCpu)});
  SECTION("empty model") {
    absl::StatusOr<Placement> p = PlanPlacement(Request({}, spec));
    REQUIRE(p.ok());
    CHECK(p->blocks.empty());
    CHECK(p->total_bytes == 0);
    CHECK(p->devices.size() == 2);
  }
  SECTION("zero-byte tensors are tiny and stay on compute") {
    absl::StatusOr<Placement> p =
        PlanPlacement(Request(Model({{"a.x", 0}, {"b.x", 0}}), spec, kCpu));
    REQUIRE(p.ok());
    CHECK(Runs(*p) == "cpu x2");
    CHECK(p->block_reason[0] == PlacementReason::kTiny);
  }
  SECTION("a spec built in code with no rest device must cover the model") {
    AllocSpec bare = Spec(AllocMode::kBytes, {Bytes(kGpu0, kGiB)});
    bare.implicit_rest_to_cpu = false;
    CHECK(PlanPlacement(Request(Uniform(3, kGiB), bare)).status().message() ==
          "the allocation places 1.00 GiB of the model's 3.00 GiB and has no "
          "rest device: add "
          "'*' to one entry, e.g. 'cpu,*'");
  }
  SECTION("duplicates and empty pins") {
    AllocSpec dup = Spec(AllocMode::kBytes, {Bytes(kGpu0, kGiB), Rest(kGpu0)});
    CHECK(PlanPlacement(Request(Uniform(3, kGiB), dup)).status().message() ==
          "device cuda:0 appears twice in the allocation");
    PlanRequest r = Request(Uniform(3, kGiB), spec);
    r.pins = {"a", ""};
    CHECK(PlanPlacement(r).status().message() ==
          "pin 1 is empty: give a block name or a prefix of one");
  }
}

TEST_CASE("An allocation that names its compute device must match the request", "[planner]") {
  // MultiGPU's "EXPERT#COMPUTE": the entries place, COMPUTE is where it runs.
  absl::StatusOr<AllocSpec> spec = ParseAllocation("cuda:0,2gb;cpu,*#cuda:1");
  REQUIRE(spec.ok());
  SECTION("the same compute device plans as the entries say") {
    absl::StatusOr<Placement> p = PlanPlacement(Request(Uniform(5, kGiB), *spec, kGpu1));
    REQUIRE(p.ok());
    CHECK(p->devices[0].device == kGpu0);
    CHECK(p->devices[0].bytes == 2 * kGiB);
  }
  SECTION("another one is refused, naming both") {
    absl::StatusOr<Placement> p = PlanPlacement(Request(Uniform(5, kGiB), *spec, kGpu0));
    CHECK(p.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK(p.status().message() ==
          "the allocation computes on cuda:1 but the request on cuda:0: give the same "
          "compute device to both");
  }
}

TEST_CASE("PlacementToText shows devices and notes", "[planner]") {
  AllocSpec spec = Spec(AllocMode::kBytes, {Bytes(kGpu0, 2 * kGiB)});
  absl::StatusOr<Placement> p = PlanPlacement(Request(Uniform(5, kGiB), spec));
  REQUIRE(p.ok());
  CHECK(PlacementToText(*p) ==
        "5 blocks, 5.00 GiB in all\n"
        "device            quota       placed  blocks\n"
        "cuda:0         2.00 GiB     2.00 GiB       2\n"
        "cpu            3.00 GiB     3.00 GiB       3\n"
        "note: no '*' in the allocation: the rest (3.00 GiB) goes to cpu\n");
}

}  // namespace
}  // namespace distorch
