// A residency's memory and layout on the daemon side: the arenas that hold a
// model's blocks, and where each tensor sits in them. Owned by the Broker
// (shared with in-flight replies and fd-channel offers); freed with the last
// reference after the registry ends the residency.
//
// Thread contract (no mutex: immutable once published). The loading thread
// fills every plain field and `arenas` (Broker::PlaceOrAttach, under the
// placement lock) before the Broker publishes the Resident in its map under
// Broker::mu_; from then on those fields, the `arenas` vector and its pointers
// are read-only and read from any thread without a lock. Only the loading
// thread (and its worker pool, on disjoint ranges) writes the arenas' memory
// and seals them; no client gets an arena before the registry marks the
// residency ready. The two fields that change later are atomics:
// `bytes_loaded` (loader workers add, anyone reads) and `cancelled` (the
// Broker sets it when the residency ends, the loader polls it).
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
  std::string format;                          // "safetensors", "gguf"
  std::string weight_dtype;                    // "keep" or the converted dtype
  std::vector<std::string> tensor_prefixes;    // the part of the file; empty = all
  std::vector<TensorInfo> tensors;             // file order; dtype/nbytes as stored in arenas
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
