// The placement planner. DESIGN.md §5; the rules are spelled out in
// include/distorch/planner.h and docs/placement.md.
#include "distorch/planner.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "distorch/units.h"
#include "planner_internal.h"

namespace distorch {

uint64_t DeviceCapacity::available() const { return free > reserve ? free - reserve : 0; }

namespace {

constexpr uint64_t kUnlimited = std::numeric_limits<uint64_t>::max();

// One device that may receive blocks, while planning.
struct Slot {
  DeviceId device;
  const DeviceCapacity* capacity = nullptr;  // null only for an implicit cpu
                                             // missing from the inventory
  uint64_t quota = 0;                        // DevicePlan::quota
  uint64_t run_cap = 0;                      // bytes its run may take (quota minus pins)
  bool is_rest = false;
  bool implicit_cpu = false;  // the rest device nobody wrote down
  bool in_walk = true;        // false for an unlisted compute device
  // Its run: positions [begin, end) in the stream of movable blocks.
  size_t begin = 0;
  size_t end = 0;
  uint64_t run_bytes = 0;
  uint64_t written = 0;      // the quota its own entry gave (implicit-cpu note)
  uint64_t fixed_bytes = 0;  // pinned + tiny (compute only)
  uint32_t fixed_count = 0;
  uint64_t spilled_in = 0;  // bytes spilled onto it (rest only)
  uint32_t spilled_count = 0;
  uint64_t placed() const { return run_bytes + fixed_bytes + spilled_in; }
};

std::string InventoryList(const std::vector<DeviceCapacity>& devices) {
  std::vector<DeviceId> ids;
  ids.reserve(devices.size());
  for (const DeviceCapacity& d : devices) ids.push_back(d.id);
  std::sort(ids.begin(), ids.end());
  if (ids.empty()) return "none";
  return absl::StrJoin(ids, ", ",
                       [](std::string* out, const DeviceId& id) { out->append(id.ToString()); });
}

const DeviceCapacity* FindDevice(const std::vector<DeviceCapacity>& devices, const DeviceId& id) {
  for (const DeviceCapacity& d : devices) {
    if (d.id == id) return &d;
  }
  return nullptr;
}

absl::Status NotOnHost(const DeviceId& id, absl::string_view role,
                       const std::vector<DeviceCapacity>& devices) {
  return absl::NotFoundError(absl::StrCat(
      role, "device ", id.ToString(), " is not on this host (have: ", InventoryList(devices), ")"));
}

uint64_t Scale(double share, uint64_t bytes) {
  if (!(share > 0)) return 0;
  double v = share * static_cast<double>(bytes);
  if (v >= 18446744073709549568.0) return kUnlimited;  // largest double < 2^64
  return static_cast<uint64_t>(v);
}

uint64_t SatAdd(uint64_t a, uint64_t b) { return a > kUnlimited - b ? kUnlimited : a + b; }

// Matches block names against the pins: a name is pinned when it equals a pin
// or starts with pin + ".". A few pins are compared directly; many go into a
// set probed with each dot-prefix of the name.
class PinMatcher {
 public:
  explicit PinMatcher(const std::vector<std::string>& pins) : pins_(pins) {
    if (pins.size() > kDirectPins) set_.insert(pins.begin(), pins.end());
  }
  bool empty() const { return pins_.empty(); }
  bool Pinned(absl::string_view name) const {
    if (pins_.size() <= kDirectPins) {
      for (const std::string& p : pins_) {
        if (name.size() >= p.size() && name.compare(0, p.size(), p) == 0 &&
            (name.size() == p.size() || name[p.size()] == '.')) {
          return true;
        }
      }
      return false;
    }
    for (size_t dot = name.find('.'); dot != absl::string_view::npos;
         dot = name.find('.', dot + 1)) {
      if (set_.contains(name.substr(0, dot))) return true;
    }
    return set_.contains(name);
  }

 private:
  static constexpr size_t kDirectPins = 8;
  const std::vector<std::string>& pins_;
  absl::flat_hash_set<absl::string_view> set_;
};

// The steps of one PlanPlacement call, over shared state.
class Planner {
 public:
  explicit Planner(const PlanRequest& req) : req_(req) {}

  absl::StatusOr<Placement> Run() {
    if (absl::Status s = planner_internal::ValidateRequest(req_); !s.ok()) return s;
    if (absl::Status s = BuildSlots(); !s.ok()) return s;
    blocks_ = GroupIntoBlocks(req_.tensors);
    Classify();
    SetQuotas();
    absl::Status walked = req_.alloc.mode == AllocMode::kRatio ? WalkShares() : WalkCaps();
    if (!walked.ok()) return walked;
    for (const Slot& slot : slots_) {
      for (size_t p = slot.begin; p < slot.end; ++p) {
        block_device_[stream_[p]] = slot.device;  // reason is kQuota already
      }
    }
    if (absl::Status s = CheckCapacity(); !s.ok()) return s;
    return Finish();
  }

 private:
  absl::Status BuildSlots() {
    const AllocSpec& spec = req_.alloc;
    if (FindDevice(req_.devices, req_.compute) == nullptr) {
      return NotOnHost(req_.compute, "compute ", req_.devices);
    }
    auto add = [this](const DeviceId& id) -> Slot& {
      slots_.emplace_back();
      slots_.back().device = id;
      return slots_.back();
    };
    if (spec.mode == AllocMode::kVirtualVram) {
      rest_ = 0;
      add(spec.virtual_vram->compute).is_rest = true;
      for (const DeviceId& d : spec.virtual_vram->donors) add(d);
    } else {
      for (const AllocEntry& e : spec.entries) {
        Slot& s = add(e.device);
        s.is_rest = e.is_rest;
        if (e.is_rest) rest_ = static_cast<int>(slots_.size()) - 1;
      }
      if (rest_ < 0 && spec.implicit_rest_to_cpu) {
        for (size_t i = 0; i < slots_.size() && rest_ < 0; ++i) {
          if (slots_[i].device.is_cpu()) rest_ = static_cast<int>(i);
        }
        if (rest_ < 0) {
          rest_ = static_cast<int>(slots_.size());
          add(DeviceId::Cpu());
        }
        slots_[rest_].is_rest = true;
        slots_[rest_].implicit_cpu = true;
      }
    }
    for (size_t i = 0; i < slots_.size() && compute_ < 0; ++i) {
      if (slots_[i].device == req_.compute) compute_ = static_cast<int>(i);
    }
    if (compute_ < 0) {
      compute_ = static_cast<int>(slots_.size());
      add(req_.compute).in_walk = false;
    }
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      s.capacity = FindDevice(req_.devices, s.device);
      // An unlisted implicit cpu matters only if something lands on it.
      bool unlisted_cpu = s.implicit_cpu && static_cast<int>(i) == LastListed() + 1;
      if (s.capacity == nullptr && !unlisted_cpu) return NotOnHost(s.device, "", req_.devices);
    }
    return absl::OkStatus();
  }

  // Index of the last slot the user wrote down.
  int LastListed() const {
    const AllocSpec& spec = req_.alloc;
    if (spec.mode == AllocMode::kVirtualVram) {
      return static_cast<int>(spec.virtual_vram->donors.size());
    }
    return static_cast<int>(spec.entries.size()) - 1;
  }

  void Classify() {
    uint64_t model = 0;
    for (const Block& b : blocks_) model += b.bytes;
    model_bytes_ = model;
    PinMatcher pins(req_.pins);
    const double tiny_below = kTinyBlockShare * static_cast<double>(model);
    block_device_.assign(blocks_.size(), req_.compute);
    block_reason_.assign(blocks_.size(), PlacementReason::kQuota);
    stream_.reserve(blocks_.size());
    Slot& compute = slots_[compute_];
    for (size_t i = 0; i < blocks_.size(); ++i) {
      const Block& b = blocks_[i];
      if (!pins.empty() && pins.Pinned(b.name)) {
        block_reason_[i] = PlacementReason::kPinned;
        ++pinned_count_;
      } else if (b.bytes == 0 || static_cast<double>(b.bytes) < tiny_below) {
        block_reason_[i] = PlacementReason::kTiny;
        ++tiny_count_;
      } else {
        stream_.push_back(static_cast<uint32_t>(i));
        movable_bytes_ += b.bytes;
        continue;
      }
      compute.fixed_bytes += b.bytes;
      ++compute.fixed_count;
    }
  }

  uint64_t Bytes(size_t stream_pos) const { return blocks_[stream_[stream_pos]].bytes; }

  void SetQuotas() {
    const AllocSpec& spec = req_.alloc;
    if (spec.mode == AllocMode::kVirtualVram) {
      uint64_t asked = spec.virtual_vram->bytes;
      uint64_t to_move = std::min(asked, movable_bytes_);
      uint64_t moved = 0;
      for (size_t i = 1; i < slots_.size(); ++i) {
        if (!slots_[i].in_walk) continue;
        slots_[i].quota = std::min(to_move - moved, slots_[i].capacity->available());
        moved += slots_[i].quota;
      }
      if (moved < to_move) {
        notes_.push_back(absl::StrCat("the donors can take ", FormatBytes(moved), " of the ",
                                      FormatBytes(asked), " virtual VRAM; the other ",
                                      FormatBytes(to_move - moved), " stay on ",
                                      req_.compute.ToString()));
      }
    } else {
      double ratio_sum = 0;
      for (const AllocEntry& e : spec.entries) {
        if (!e.is_rest) ratio_sum += e.ratio;
      }
      bool has_star = rest_ >= 0 && !slots_[rest_].implicit_cpu;
      bool literal = has_star && ratio_sum <= 100;
      if (spec.mode == AllocMode::kRatio && !literal && ratio_sum > 0 &&
          std::abs(ratio_sum - 100) > 1e-9) {
        notes_.push_back(
            absl::StrFormat("the ratio shares add up to %g%%; scaled to 100%%", ratio_sum));
      }
      for (size_t i = 0; i < spec.entries.size(); ++i) {
        const AllocEntry& e = spec.entries[i];
        if (e.is_rest) continue;
        switch (spec.mode) {
          case AllocMode::kBytes:
            slots_[i].quota = e.bytes;
            break;
          case AllocMode::kFraction:
            slots_[i].quota = Scale(e.fraction, slots_[i].capacity->total);
            break;
          case AllocMode::kRatio:
            slots_[i].quota = Scale(
                literal ? e.ratio / 100 : (ratio_sum > 0 ? e.ratio / ratio_sum : 0), model_bytes_);
            break;
          case AllocMode::kVirtualVram:
            break;
        }
        slots_[i].written = slots_[i].quota;
      }
    }
    uint64_t others = 0;
    for (const Slot& s : slots_) {
      if (s.in_walk && !s.is_rest) others = SatAdd(others, s.quota);
    }
    if (rest_ >= 0) slots_[rest_].quota = model_bytes_ > others ? model_bytes_ - others : 0;
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      uint64_t pins = static_cast<int>(i) == compute_ ? s.fixed_bytes : 0;
      s.run_cap = s.quota > pins ? s.quota - pins : 0;
      if (pins > s.quota && s.in_walk && !s.is_rest) {
        notes_.push_back(absl::StrCat(s.device.ToString(), "'s pinned and tiny blocks (",
                                      FormatBytes(pins), ") exceed its quota (",
                                      FormatBytes(s.quota), "): it holds only them"));
      }
    }
  }

  std::vector<size_t> WalkOrder() const {
    std::vector<size_t> order;
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].in_walk) order.push_back(i);
    }
    return order;
  }

  // Caps (kBytes, kFraction, kVirtualVram): devices before the rest device
  // take runs from the front, devices after it from the back, each never over
  // its cap; the rest device takes the middle.
  absl::Status WalkCaps() {
    std::vector<size_t> order = WalkOrder();
    size_t front = 0, back = stream_.size();
    size_t k = 0;
    for (; k < order.size() && static_cast<int>(order[k]) != rest_; ++k) {
      Slot& s = slots_[order[k]];
      s.begin = front;
      while (front < back && s.run_bytes + Bytes(front) <= s.run_cap) s.run_bytes += Bytes(front++);
      s.end = front;
      NoteSkipped(s, front < back, front);
    }
    if (k == order.size()) {  // no rest device
      if (front < back) {
        uint64_t left = 0;
        for (size_t p = front; p < back; ++p) left += Bytes(p);
        return absl::InvalidArgumentError(
            absl::StrCat("the allocation places ", FormatBytes(model_bytes_ - left),
                         " of the model's ", FormatBytes(model_bytes_),
                         " and has no rest device: add '*' to one entry, e.g. 'cpu,*'"));
      }
      return absl::OkStatus();
    }
    for (size_t j = order.size(); j-- > k + 1;) {
      Slot& s = slots_[order[j]];
      s.end = back;
      while (back > front && s.run_bytes + Bytes(back - 1) <= s.run_cap)
        s.run_bytes += Bytes(--back);
      s.begin = back;
      NoteSkipped(s, back > front, back - 1);
    }
    Slot& rest = slots_[rest_];
    rest.begin = front;
    rest.end = back;
    for (size_t p = front; p < back; ++p) rest.run_bytes += Bytes(p);
    return absl::OkStatus();
  }

  // A device that could take something but met a block bigger than its cap.
  void NoteSkipped(const Slot& s, bool has_next, size_t next) {
    if (s.begin != s.end || s.run_cap == 0 || !has_next) return;
    const Block& b = blocks_[stream_[next]];
    notes_.push_back(absl::StrCat(
        s.device.ToString(), " takes no blocks: the next one, '", b.name, "' (",
        FormatBytes(b.bytes), "), is bigger than its quota allows (", FormatBytes(s.run_cap), ")"));
  }

  // Shares (kRatio): consecutive intervals of the movable bytes in listed
  // order; a block goes where its midpoint falls, the last device takes any
  // rounding residue.
  absl::Status WalkShares() {
    std::vector<size_t> order = WalkOrder();
    uint64_t others = 0;
    for (size_t i : order) {
      if (!slots_[i].is_rest) others = SatAdd(others, slots_[i].run_cap);
    }
    using u128 = unsigned __int128;
    uint64_t boundary = 0;
    u128 cum2 = 0;  // twice the bytes before position p
    size_t p = 0;
    for (size_t k = 0; k < order.size(); ++k) {
      Slot& s = slots_[order[k]];
      uint64_t len =
          s.is_rest ? (movable_bytes_ > others ? movable_bytes_ - others : 0) : s.run_cap;
      boundary = k + 1 == order.size() ? kUnlimited : SatAdd(boundary, len);
      s.begin = p;
      while (p < stream_.size() && cum2 + Bytes(p) < 2 * static_cast<u128>(boundary)) {
        cum2 += 2 * static_cast<u128>(Bytes(p));
        s.run_bytes += Bytes(p++);
      }
      s.end = p;
    }
    if (p < stream_.size()) {  // only with no walk slot at all
      return absl::InvalidArgumentError(
          "the allocation names no device: add at least one entry, e.g. "
          "'cpu,*'");
    }
    return absl::OkStatus();
  }

  std::string ShortText(const Slot& s) const {
    const DeviceCapacity& c = *s.capacity;
    std::string spilled;
    if (s.spilled_in > 0) {
      spilled = absl::StrCat(" (", FormatBytes(s.spilled_in), " of it spilled from ",
                             absl::StrJoin(spill_sources_, ", "), ")");
    }
    return absl::StrCat(
        s.device.ToString(), " is short by ", FormatBytes(s.placed() - c.available()), ": placing ",
        FormatBytes(s.placed()), spilled, ", ", FormatBytes(c.available()), " available (free ",
        FormatBytes(c.free), " - reserve ", FormatBytes(c.reserve), ")");
  }

  absl::Status CheckCapacity() {
    std::vector<std::string> shorts;
    bool spilling_would_help = false;
    bool rest_short = false;
    for (size_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      if (s.is_rest || s.placed() == 0) continue;
      uint64_t avail = s.capacity->available();
      if (s.placed() <= avail) continue;
      if (req_.allow_spill && rest_ >= 0 && s.in_walk) Spill(s, avail, static_cast<int>(i) < rest_);
      if (s.placed() > avail) {
        shorts.push_back(ShortText(s));
        spilling_would_help |= s.in_walk && s.run_bytes > 0;
      }
    }
    if (rest_ >= 0) {
      const Slot& rest = slots_[rest_];
      if (rest.capacity == nullptr && rest.placed() > 0) {
        return absl::NotFoundError(
            absl::StrCat("device cpu is not on this host (have: ", InventoryList(req_.devices),
                         "): the allocation has no '*', so the rest (", FormatBytes(rest.placed()),
                         ") goes to cpu; add '*' to one entry"));
      }
      if (rest.placed() > 0 && rest.placed() > rest.capacity->available()) {
        shorts.push_back(ShortText(rest));
        rest_short = true;
      }
    }
    if (shorts.empty()) return absl::OkStatus();
    std::string hint;
    if (rest_short) {
      hint = absl::StrCat("; give the other devices more of the model or free memory on ",
                          slots_[rest_].device.ToString());
    } else if (!req_.allow_spill && rest_ >= 0 && spilling_would_help) {
      hint = absl::StrCat("; lower the allocation or allow spilling to ",
                          slots_[rest_].device.ToString());
    }
    return absl::ResourceExhaustedError(absl::StrCat(absl::StrJoin(shorts, "; "), hint));
  }

  // Moves blocks off the end of `s`'s run that faces the rest device until it
  // fits `avail` (or its run is gone).
  void Spill(Slot& s, uint64_t avail, bool before_rest) {
    Slot& rest = slots_[rest_];
    uint64_t short_by = s.placed() - avail;
    uint64_t moved = 0;
    uint32_t count = 0;
    while (s.placed() > avail && s.begin < s.end) {
      size_t p = before_rest ? --s.end : s.begin++;
      uint32_t block = stream_[p];
      uint64_t bytes = blocks_[block].bytes;
      s.run_bytes -= bytes;
      rest.spilled_in += bytes;
      ++rest.spilled_count;
      block_device_[block] = rest.device;
      block_reason_[block] = PlacementReason::kSpill;
      moved += bytes;
      ++count;
    }
    if (count == 0) return;
    spill_sources_.push_back(s.device.ToString());
    notes_.push_back(absl::StrCat(s.device.ToString(), " is short by ", FormatBytes(short_by), ": ",
                                  count, count == 1 ? " block (" : " blocks (", FormatBytes(moved),
                                  ") spilled to ", rest.device.ToString()));
  }

  Placement Finish() {
    if (rest_ >= 0 && slots_[rest_].implicit_cpu && slots_[rest_].run_bytes > 0) {
      const Slot& cpu = slots_[rest_];
      if (static_cast<int>(rest_) > LastListed()) {
        notes_.insert(notes_.begin(), absl::StrCat("no '*' in the allocation: the rest (",
                                                   FormatBytes(cpu.run_bytes), ") goes to cpu"));
      } else if (cpu.run_bytes > cpu.written) {
        notes_.insert(notes_.begin(),
                      absl::StrCat("no '*' in the allocation: the rest goes to cpu, which takes ",
                                   FormatBytes(cpu.run_bytes), ", more than the ",
                                   FormatBytes(cpu.written), " written for it"));
      }
    }
    if (pinned_count_ + tiny_count_ > 0) {
      notes_.push_back(absl::StrCat(pinned_count_, " pinned and ", tiny_count_, " tiny blocks (",
                                    FormatBytes(slots_[compute_].fixed_bytes), ") stay on ",
                                    req_.compute.ToString()));
    }
    Placement out;
    out.devices.reserve(slots_.size());
    for (size_t i = 0; i < slots_.size(); ++i) {
      const Slot& s = slots_[i];
      if (s.implicit_cpu && static_cast<int>(i) > LastListed() && s.placed() == 0) continue;
      DevicePlan plan;
      plan.device = s.device;
      plan.quota = s.quota;
      plan.bytes = s.placed();
      plan.blocks = static_cast<uint32_t>(s.end - s.begin) + s.fixed_count + s.spilled_count;
      out.devices.push_back(plan);
    }
    out.blocks = std::move(blocks_);
    out.block_device = std::move(block_device_);
    out.block_reason = std::move(block_reason_);
    out.notes = std::move(notes_);
    out.total_bytes = model_bytes_;
    return out;
  }

  const PlanRequest& req_;
  std::vector<Block> blocks_;
  std::vector<uint32_t> stream_;  // movable blocks (not pinned, not tiny), model order
  std::vector<DeviceId> block_device_;
  std::vector<PlacementReason> block_reason_;
  std::vector<Slot> slots_;  // DevicePlan order
  int rest_ = -1;
  int compute_ = -1;
  uint64_t model_bytes_ = 0;
  uint64_t movable_bytes_ = 0;
  uint32_t pinned_count_ = 0;
  uint32_t tiny_count_ = 0;
  std::vector<std::string> spill_sources_;
  std::vector<std::string> notes_;
};

}  // namespace

absl::StatusOr<Placement> PlanPlacement(const PlanRequest& request) {
  return Planner(request).Run();
}

}  // namespace distorch
