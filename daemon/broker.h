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
#include "daemon/devices/device_set.h"
#include "daemon/fdpass/ticket_book.h"
#include "daemon/load/load_request.h"
#include "daemon/load/open_model.h"
#include "daemon/load/resident.h"
#include "distorch/planner.h"
#include "distorch/registry.h"

namespace distorch {

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

// What a Free or Release did: every lease it released (a model may stay
// resident for other leases) and the residencies whose last lease went.
struct FreeOutcome {
  std::vector<LeaseSnapshot> released;
  std::vector<EndedResidency> ended;
};

struct BrokerStatus {
  absl::Duration uptime;
  std::string socket_path, fd_channel_path;
  absl::Duration grace_period;
  bool cuda_available = false;
  std::string cuda_note;
  uint32_t sessions = 0;  // client sessions (the pin session is not one)
  uint32_t models = 0;    // residencies, loading or ready
  std::map<DeviceId, uint64_t> broker_bytes;
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
  absl::StatusOr<LoadOutcome> Load(const LoadArgs& args, const LoadProgress& progress);
  // Ends one lease; `ended` is empty when the model stays resident.
  absl::StatusOr<FreeOutcome> Release(SessionId session, LeaseId lease);
  // ComfyUI's /free: with unload_models, ends the session's (or, with
  // all_sessions, every session's) unflagged leases; without it, nothing
  // (the caches are the client's to reset).
  absl::StatusOr<FreeOutcome> Free(SessionId session, bool all_sessions, bool unload_models);
  absl::StatusOr<uint64_t> SoftEmptyCache(SessionId session);
  absl::StatusOr<int> SetKeepLoaded(SessionId session, ResidencyId model, bool keep);
  absl::StatusOr<std::vector<EndedResidency>> Evict(ResidencyId model, const std::string& name);

  absl::StatusOr<PlanOutcome> Plan(const PlanArgs& args) const;
  std::vector<DeviceView> Devices() const;
  std::vector<ModelView> Models() const;
  std::vector<SessionSnapshot> Sessions() const { return registry_.Sessions(); }
  std::map<DeviceId, uint64_t> BrokerBytes() const;
  // What `status` shows: counts without the pin session, the broker's bytes.
  BrokerStatus Status() const;

  // How long the broker has had nothing to do: no session but the pin
  // session, no residency, no load started since. Zero while it has. (The
  // idle exit of a daemon a client started on demand, config.idle_exit.)
  absl::Duration IdleFor(absl::Time now);

  TicketBook& tickets() { return tickets_; }
  const DaemonConfig& config() const { return config_; }
  const DeviceSet& devices() const { return *devices_; }
  absl::Time started() const { return started_; }

 private:
  // What a load's locked stages decided: a new resident to fill, or a lease
  // on an existing residency to attach to (resident == null).
  struct Placed {
    Registry::Acquired acquired;
    std::shared_ptr<Resident> resident;
    std::string note;                               // for this load's reply (SharedPlacementNote)
    std::string wanted_allocation, wanted_compute;  // the request, canonical
  };
  // Under placement_mu_: acquire-or-attach, then plan, layout, allocate.
  absl::StatusOr<Placed> PlaceOrAttach(const LoadArgs& args, OpenedModel& model);
  // Leases an existing residency when the model has one to share (returns
  // nullopt, placed->acquired set); else the key of the residency to create.
  absl::StatusOr<std::optional<ModelKey>> AcquireExisting(const LoadArgs& args, SessionId session,
                                                          bool keep, const ModelKey& key,
                                                          Placed* placed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(placement_mu_);
  absl::StatusOr<std::shared_ptr<Resident>> PlanAndAllocate(const std::string& name,
                                                            OpenedModel& model,
                                                            const PlanRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(placement_mu_);
  // Outside every lock: copy, seal, mark ready, the reply.
  absl::StatusOr<LoadOutcome> CopyIn(const std::string& name, const OpenedModel& model,
                                     std::shared_ptr<Resident> resident, LeaseId lease,
                                     const LoadProgress& progress);
  // Another session's residency: wait until it is ready, reporting its progress.
  absl::StatusOr<LoadOutcome> Attach(ResidencyId id, LeaseId lease, const LoadProgress& progress);
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
