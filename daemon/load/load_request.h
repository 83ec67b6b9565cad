// What a load is asked for and what it gives back: the two ends of the load
// pipeline (docs/architecture.md, "A load, step by step").
#ifndef DISTORCH_DAEMON_LOAD_LOAD_REQUEST_H_
#define DISTORCH_DAEMON_LOAD_LOAD_REQUEST_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "daemon/load/resident.h"
#include "distorch/registry.h"

namespace distorch {

struct LoadArgs {
  SessionId session = 0;
  std::string file_ticket;
  std::string name;
  std::string allocation;
  std::string compute_device;  // "" = the default compute device
  bool keep_loaded = false;
  std::vector<std::string> pins;
  bool allow_spill = false;
  std::string weight_dtype;   // "" / "keep"
  bool operator_pin = false;  // lease held by kPinSession
  // A residency placed as asked: share one only when its placement is equal
  // (LoadRequest.own_placement).
  bool own_placement = false;
  // Only the tensors whose names start with one of these (a part of the
  // file, a residency of its own); empty = the whole file.
  std::vector<std::string> tensor_prefixes;
};

struct LoadOutcome {
  ResidencyId model = 0;
  LeaseId lease = 0;
  bool shared = false;  // attached to an existing residency
  std::shared_ptr<const Resident> resident;
  std::string arena_ticket;        // GET on the fd channel for the memfds
  std::vector<std::string> notes;  // for this load only (added to the placement's)
  // The request's placement in canonical form (resident->allocation and
  // compute_device say what the residency was placed with).
  std::string requested_allocation;
  std::string requested_compute_device;
};

// Called from a loading thread with (bytes_loaded, bytes_total).
using LoadProgress = std::function<void(uint64_t, uint64_t)>;

}  // namespace distorch

#endif  // DISTORCH_DAEMON_LOAD_LOAD_REQUEST_H_
