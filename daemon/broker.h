// The broker: everything distorchd does, behind absl::Status calls. The gRPC
// service is a thin translation layer over this class; tests and the service
// use the same entry points.
#ifndef DISTORCH_DAEMON_BROKER_H_
#define DISTORCH_DAEMON_BROKER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "daemon/config.h"
#include "daemon/device_set.h"
#include "daemon/resident.h"
#include "daemon/ticket_book.h"
#include "distorch/planner.h"
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
  std::string weight_dtype;  // "" / "keep"
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
  std::string arena_ticket;  // GET on the fd channel for the memfds
  std::vector<std::string> notes;  // for this load only (added to the placement's)
  // The request's placement in canonical form (resident->allocation and
  // compute_device say what the residency was placed with).
  std::string requested_allocation;
  std::string requested_compute_device;
};

struct PlanArgs {
  std::vector<TensorInfo> tensors;
  std::string allocation;
  std::string compute_device;
  std::vector<std::string> pins;
  bool allow_spill = false;
  std::vector<std::string> tensor_prefixes;  // plan only this part; empty = all
};

// A plan and what it was made for: the canonical allocation and the compute
// device it ran on (the request's, the string's, or the default).
struct PlanOutcome {
  Placement placement;
  std::string allocation;
  std::string compute_device;
};

struct DeviceView {
  std::string name, kind, description;
  DeviceStats stats;
  DeviceSettings settings;
  DeviceDetails details;
  uint64_t available = 0;
};

struct ModelView {
  ResidencySnapshot residency;
  std::shared_ptr<const Resident> resident;  // null only in a narrow race
};

// What a Free did: every lease it released (a model may stay resident for
// other sessions) and the residencies whose last lease went.
struct FreeOutcome {
  std::vector<LeaseSnapshot> released;
  std::vector<EndedResidency> ended;
};

// Called with each session that held a lease on an evicted residency.
using EvictionListener = std::function<void(SessionId, ResidencyId, const std::string& name)>;

// Thread-safe. Loads run on the caller's thread (the service gives each its own).
class Broker {
 public:
  Broker(DaemonConfig config, std::unique_ptr<DeviceSet> devices);
  ~Broker();  // stops the reaper; frees every arena

  void SetEvictionListener(EvictionListener listener);

  SessionId OpenSession(const std::string& client_name, int pid);
  void CloseSession(SessionId session);

  // Plans, allocates and loads (or attaches to) a model. `progress` is called
  // from the loading thread with (bytes_loaded, bytes_total).
  absl::StatusOr<LoadOutcome> Load(const LoadArgs& args,
                                   const std::function<void(uint64_t, uint64_t)>& progress);
  absl::StatusOr<std::vector<EndedResidency>> Release(SessionId session, LeaseId lease);
  absl::StatusOr<FreeOutcome> Free(SessionId session, bool all_sessions);
  absl::StatusOr<uint64_t> SoftEmptyCache(SessionId session);
  absl::StatusOr<int> SetKeepLoaded(SessionId session, ResidencyId model, bool keep);
  absl::StatusOr<std::vector<EndedResidency>> Evict(ResidencyId model, const std::string& name);

  absl::StatusOr<PlanOutcome> Plan(const PlanArgs& args) const;
  std::vector<DeviceView> Devices() const;
  std::vector<ModelView> Models() const;
  std::vector<SessionSnapshot> Sessions() const { return registry_.Sessions(); }
  std::map<DeviceId, uint64_t> BrokerBytes() const;

  // How long the broker has had nothing to do: no session but the pin
  // session, no residency, no load started since. Zero while it has. (The
  // idle exit of a daemon a client started on demand, config.idle_exit.)
  absl::Duration IdleFor(absl::Time now);

  TicketBook& tickets() { return tickets_; }
  const DaemonConfig& config() const { return config_; }
  const DeviceSet& devices() const { return *devices_; }
  absl::Time started() const { return started_; }

 private:
  absl::StatusOr<PlanRequest> BuildPlanRequest(std::vector<TensorInfo> tensors,
                                               const std::string& allocation,
                                               const std::string& compute,
                                               std::vector<std::string> pins,
                                               bool allow_spill) const;
  // Which residency a load attaches to, or the key of the one it creates.
  // Called under placement_mu_.
  struct ResidencyChoice {
    std::optional<std::pair<ResidencyId, ModelKey>> attach;
    ModelKey new_key;  // when !attach
  };
  ResidencyChoice ChooseResidency(const ModelKey& model, bool own_placement,
                                  const std::string& allocation,
                                  const std::string& compute) const;
  absl::StatusOr<LoadOutcome> Attach(ResidencyId id, LeaseId lease,
                                     const std::function<void(uint64_t, uint64_t)>& progress);
  LoadOutcome Outcome(std::shared_ptr<const Resident> resident, LeaseId lease, bool shared);
  void Dispose(const std::vector<EndedResidency>& ended, absl::string_view why);
  std::shared_ptr<Resident> FindResident(ResidencyId id) const;
  void ReapLoop();
  void NoteActivity();

  const DaemonConfig config_;
  std::unique_ptr<DeviceSet> devices_;
  const absl::Time started_;
  Registry registry_;
  TicketBook tickets_;

  // Held across plan + arena allocation so two loads never plan against the
  // same free memory. Never held while reading a file.
  absl::Mutex placement_mu_;

  mutable absl::Mutex mu_;
  absl::flat_hash_map<ResidencyId, std::shared_ptr<Resident>> residents_ ABSL_GUARDED_BY(mu_);
  EvictionListener on_evicted_ ABSL_GUARDED_BY(mu_);
  absl::Time last_busy_ ABSL_GUARDED_BY(mu_);  // see IdleFor()

  absl::Notification stop_;
  std::thread reaper_;
};

}  // namespace distorch

#endif  // DISTORCH_DAEMON_BROKER_H_
