// A residency's memory and layout on the daemon side: the arenas that hold a
// model's blocks, and where each tensor sits in them. Owned by the Broker
// (shared with in-flight replies and fd-channel offers); freed with the last
// reference after the registry ends the residency.
#ifndef DISTORCH_DAEMON_LOAD_RESIDENT_H_
#define DISTORCH_DAEMON_LOAD_RESIDENT_H_

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "daemon/devices/device.h"
#include "distorch/arena_layout.h"
#include "distorch/planner.h"
#include "distorch/registry.h"
#include "distorch/tensor_info.h"

namespace distorch {

struct Resident {
  ResidencyId id = 0;
  std::string name;
  std::string format;        // "safetensors", "gguf"
  std::string weight_dtype;  // "keep" or the converted dtype
  std::vector<std::string> tensor_prefixes;  // the part of the file; empty = all
  std::vector<TensorInfo> tensors;  // file order; dtype/nbytes as stored in arenas
  std::vector<std::string> tensor_type_names;  // GGUF: ggml type per tensor; else empty
  Placement placement;
  std::string allocation;  // canonical allocation string it was placed with
  std::string compute_device;
  ArenaLayout layout;
  std::vector<std::unique_ptr<Arena>> arenas;  // parallel to layout.arenas
  uint64_t bytes_total = 0;
  std::atomic<uint64_t> bytes_loaded{0};
  // Set when the residency ends while its load still runs (its last lease
  // went, or it was evicted): the loader stops early.
  std::atomic<bool> cancelled{false};
};

}  // namespace distorch

#endif  // DISTORCH_DAEMON_LOAD_RESIDENT_H_
