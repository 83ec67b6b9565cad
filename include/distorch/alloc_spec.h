// Allocation strings: how a user says where a model's blocks may live.
// docs/allocation-strings.md holds the grammar; this is its one parser.
#ifndef DISTORCH_ALLOC_SPEC_H_
#define DISTORCH_ALLOC_SPEC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "distorch/device_id.h"

namespace distorch {

// The mode comes from the values, never from letters in device names.
enum class AllocMode {
  kBytes,        // cuda:0,2.5gb;cpu,*     absolute sizes
  kRatio,        // cuda:0,25%;cpu,75%     shares of the model, normalised
  kFraction,     // cuda:0,0.8;cpu,0.5     fraction of each device's TOTAL memory
  kVirtualVram,  // compute=cuda:0, virtual_vram_gb=8, donors=cuda:1,cpu
};

struct AllocEntry {
  DeviceId device;
  bool is_rest = false;  // '*': whatever the other entries leave
  uint64_t bytes = 0;    // kBytes
  double ratio = 0;      // kRatio: the percentage as written (25 for 25%)
  double fraction = 0;   // kFraction: 0 <= f <= 1
  size_t position = 0;   // 0-based offset of the entry's text in the input
};

// The node form: move `bytes` of the model off `compute` onto `donors`,
// filling them in order.
struct VirtualVram {
  DeviceId compute;
  uint64_t bytes = 0;
  std::vector<DeviceId> donors;
};

struct AllocSpec {
  AllocMode mode = AllocMode::kBytes;
  std::vector<AllocEntry> entries;  // in the order written (empty for kVirtualVram)
  // True when no entry is '*': the rest goes to cpu (ComfyUI-MultiGPU's rule).
  // The planner treats cpu as the rest device and says so in its notes.
  bool implicit_rest_to_cpu = false;
  std::optional<VirtualVram> virtual_vram;
  // The compute device the string names, if it names one: the virtual VRAM
  // forms always do (equal to virtual_vram->compute), an entries string does
  // in MultiGPU's "EXPERT#COMPUTE" form. When set, a request's compute device
  // must equal it (or be empty and take it).
  std::optional<DeviceId> compute_device;

  // Canonical text that parses back to an equal spec; sizes in the shortest
  // exact unit ("2.5gib", "512kib", "1000b"):
  // "cuda:0,2.5gib;cpu,*", "cuda:0,25%;cpu,*", "cuda:0,0.8;cpu,0.5",
  // "cuda:0,2gib;cpu,*#cuda:1" (entries with a compute device),
  // "compute=cuda:0,virtual_vram_gb=8,donors=cuda:1,cpu".
  std::string ToString() const;
};

// True when `a` and `b` say the same thing: same mode, devices, values, rest
// rule and compute device. Positions are ignored: they record where the text was, and the
// canonical ToString() of a spec parses back with other positions.
bool SameMeaning(const AllocSpec& a, const AllocSpec& b);

// Parses an allocation string. Accepts:
//   entries separated by ';', each "DEVICE,VALUE" (whitespace around any token,
//   any case), VALUE one of: a size with unit ("2.5gb", "3G", "100mib"), a
//   percentage ("25%"), a plain number in [0, 1] (fraction of the device's
//   total memory), or '*'. A trailing ';' is allowed.
//   Percentages without '*' are weights (8%;8%;4% = 40/40/20); with '*' they
//   are shares of 100% and '*' takes what they leave.
//   The virtual-VRAM node form "compute=DEV, virtual_vram_gb=N, donors=DEV,DEV",
//   ComfyUI-MultiGPU's logged form of it, "#DEV;N;DEV,DEV", and its legacy
//   DisTorch v1 form "DEV;N;DEV,DEV".
//   MultiGPU's expert form "ENTRIES#DEV" (also "ENTRIES#DEV;N;DEV,DEV" and
//   "ENTRIES#"): the entries decide, DEV is recorded as compute_device.
// The form is chosen before parsing: '#' anywhere -> MultiGPU's forms, else
// '=' -> the named form, else three ';' fields with no ',' in the first two
// -> the legacy form, else entries.
// Every error is InvalidArgument naming the offending token, its position and
// the fix, e.g. "allocation token '5gb*' at position 7: give a size or '*', not both".
absl::StatusOr<AllocSpec> ParseAllocation(absl::string_view text);

}  // namespace distorch

#endif  // DISTORCH_ALLOC_SPEC_H_
