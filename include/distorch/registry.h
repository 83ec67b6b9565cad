// Sessions, residencies and leases: the broker's keep/eject state machine.
// Pure bookkeeping: it owns no memory. Operations that end a residency return
// it, and the caller frees the residency's arenas. DESIGN.md §6.
#ifndef DISTORCH_REGISTRY_H_
#define DISTORCH_REGISTRY_H_

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "distorch/device_id.h"

namespace distorch {

using SessionId = uint64_t;
using ResidencyId = uint64_t;
using LeaseId = uint64_t;

// The session that holds operator pins (distorchctl load --pin). It is always
// open and never expires.
inline constexpr SessionId kPinSession = 1;

// Identifies a residency: the model's bytes (the file's identity, the part
// of the file it holds, and the load options that change bytes, e.g. weight
// dtype) and, for a residency a load asked to have to itself
// (LoadRequest.own_placement), its placement. Two loads with equal keys share
// one residency.
struct ModelKey {
  std::string file_identity;  // "dev:ino:size:mtime_ns"
  std::string options;        // "dtype=keep"
  // "" for the model's shared residency; "ALLOCATION@COMPUTE" (canonical) for
  // a second residency placed as its own_placement load asked.
  std::string placement;
  // The tensor prefixes of a part of the file (canonical: sorted, see
  // tensor_part.h); empty for the whole file. Parts are models of their own.
  std::vector<std::string> part;
  bool SameModel(const ModelKey& other) const {
    return file_identity == other.file_identity && options == other.options && part == other.part;
  }
  friend bool operator==(const ModelKey& a, const ModelKey& b) {
    return a.SameModel(b) && a.placement == b.placement;
  }
  template <typename H>
  friend H AbslHashValue(H h, const ModelKey& k) {
    return H::combine(std::move(h), k.file_identity, k.options, k.placement, k.part);
  }
  // "dev:ino:size:mtime|dtype=keep[|part=P1,P2][|ALLOCATION@COMPUTE]"
  std::string ToString() const {
    std::string out = file_identity + "|" + options;
    if (!part.empty()) {
      out += "|part=";
      for (size_t i = 0; i < part.size(); ++i) out += (i ? "," : "") + part[i];
    }
    return placement.empty() ? out : out + "|" + placement;
  }
};

// kFailed is never listed: a failed load ends its residency, and AwaitReady
// reports the failure from a bounded record of recent ones.
enum class ResidencyState { kLoading, kReady, kFailed };

// "loading", "ready", "failed" (ModelInfo.state).
inline const char* ResidencyStateName(ResidencyState state) {
  switch (state) {
    case ResidencyState::kLoading:
      return "loading";
    case ResidencyState::kReady:
      return "ready";
    case ResidencyState::kFailed:
      return "failed";
  }
  return "unknown";
}

struct LeaseSnapshot {
  LeaseId lease = 0;
  SessionId session = 0;
  ResidencyId residency = 0;
  std::string model_name;
  bool keep_loaded = false;
  friend bool operator==(const LeaseSnapshot& a, const LeaseSnapshot& b) {
    return a.lease == b.lease && a.session == b.session && a.residency == b.residency &&
           a.model_name == b.model_name && a.keep_loaded == b.keep_loaded;
  }
};

struct ResidencySnapshot {
  ResidencyId id = 0;
  ModelKey key;
  std::string name;
  ResidencyState state = ResidencyState::kLoading;
  std::map<DeviceId, uint64_t> bytes_by_device;  // as planned at Acquire
  std::vector<LeaseSnapshot> leases;             // in acquisition order
  friend bool operator==(const ResidencySnapshot& a, const ResidencySnapshot& b) {
    return a.id == b.id && a.key == b.key && a.name == b.name && a.state == b.state &&
           a.bytes_by_device == b.bytes_by_device && a.leases == b.leases;
  }
};

struct SessionSnapshot {
  SessionId id = 0;
  std::string client_name;
  int pid = 0;
  bool connected = true;
  absl::Time disconnected_at = absl::InfiniteFuture();
  std::vector<LeaseSnapshot> leases;  // in acquisition order
  friend bool operator==(const SessionSnapshot& a, const SessionSnapshot& b) {
    return a.id == b.id && a.client_name == b.client_name && a.pid == b.pid &&
           a.connected == b.connected && a.disconnected_at == b.disconnected_at &&
           a.leases == b.leases;
  }
};

// A residency whose last lease went (or that an operator evicted): the caller
// must free its memory.
struct EndedResidency {
  ResidencyId id = 0;
  std::string name;
  std::map<DeviceId, uint64_t> bytes_by_device;
  bool was_loading = false;  // the loader still runs; it will see Cancelled
  // Sessions whose leases ended with it, ascending (an operator eviction tells
  // them: SessionEvent.evicted). kPinSession appears here like any other.
  std::vector<SessionId> holders;
};

// Thread-safe: one mutex guards all state and every method may be called from
// any thread; only AwaitReady blocks (on that mutex's condition variable).
// Leases are the only path to a residency: a residency exists while it has at
// least one lease and ends with its last one. Ids of sessions, residencies and
// leases come from one counter and are never reused, so a stale id can never
// name a newer object. Snapshots are copies, ordered by id.
class Registry {
 public:
  // The registry starts with kPinSession open.
  explicit Registry(absl::Duration grace_period);
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  SessionId OpenSession(std::string client_name, int pid);
  // The stream closed: the session's leases end at now + grace (ReapExpired).
  // A second close keeps the first time. No-op for kPinSession and unknown ids.
  void CloseSession(SessionId session, absl::Time now);
  // Sessions closed for at least the grace period end (and are forgotten),
  // with their leases. Results are ordered by session, then lease.
  std::vector<EndedResidency> ReapExpired(absl::Time now);

  struct Acquired {
    ResidencyId residency = 0;
    LeaseId lease = 0;
    bool must_load = false;  // true for the first lease: the caller loads it
  };
  // Leases the residency for `key`, creating it (state kLoading, must_load)
  // when none exists; `bytes_by_device` is recorded only on creation. A session
  // may lease the same model twice (two nodes loading one file): each lease is
  // separate. Leases of kPinSession are always keep_loaded (a pin survives
  // Free; only Release or Evict ends it). FailedPrecondition if the session is
  // closed or unknown.
  absl::StatusOr<Acquired> Acquire(SessionId session, const ModelKey& key, std::string name,
                                   bool keep_loaded, std::map<DeviceId, uint64_t> bytes_by_device);
  // The residency id for `key`, if one exists (any state).
  std::optional<ResidencyId> Find(const ModelKey& key) const;
  // Every residency of the same model as `key` (same file and options, any
  // placement), oldest first, with its key.
  std::vector<std::pair<ResidencyId, ModelKey>> FindSameModel(const ModelKey& key) const;

  // The loader finished. Cancelled if every lease went while it loaded (the
  // caller frees the memory it filled; the residency is already gone);
  // FailedPrecondition if it is already ready.
  absl::Status MarkReady(ResidencyId residency);
  // The load failed: the residency and all its leases end; AwaitReady callers
  // (and later AwaitReady calls on this id, for the most recent 256 failures)
  // get `why` (an OK `why` becomes Internal). The loader frees what it filled.
  // No-op unless the residency is loading.
  void MarkFailed(ResidencyId residency, absl::Status why);
  // Blocks until the residency is ready (OK), failed (its error), gone
  // (Cancelled) or the timeout passes (DeadlineExceeded).
  absl::Status AwaitReady(ResidencyId residency, absl::Duration timeout);

  // ComfyUI's /free with unload_models: ends this session's leases whose
  // keep_loaded is false, and nothing else. None flagged (or an unknown
  // session): a strict no-op. `released`, when given, receives every lease
  // that ended (FreeReply lists each model, destroyed or not).
  std::vector<EndedResidency> Free(SessionId session,
                                   std::vector<LeaseSnapshot>* released = nullptr);
  // Ends one lease of this session (NotFound if it is not this session's).
  // `released`, when given, receives the lease as it was.
  absl::StatusOr<std::vector<EndedResidency>> Release(SessionId session, LeaseId lease,
                                                      LeaseSnapshot* released = nullptr);
  // Sets keep_loaded on every lease this session holds on the residency.
  // Returns how many leases changed value (NotFound when the session holds
  // none; FailedPrecondition when unflagging a pin: release it instead).
  absl::StatusOr<int> SetKeepLoaded(SessionId session, ResidencyId residency, bool keep);
  // Operator eviction: ends the residency and every lease on it.
  absl::StatusOr<EndedResidency> Evict(ResidencyId residency);

  // Bytes per device of every residency that exists (loading or ready).
  std::map<DeviceId, uint64_t> BytesByDevice() const;
  std::vector<ResidencySnapshot> Residencies() const;
  std::vector<SessionSnapshot> Sessions() const;
  absl::StatusOr<ResidencySnapshot> GetResidency(ResidencyId residency) const;

 private:
  struct Lease {
    SessionId session;
    ResidencyId residency;
    bool keep_loaded;
  };
  struct Residency {
    ModelKey key;
    std::string name;
    ResidencyState state = ResidencyState::kLoading;
    std::map<DeviceId, uint64_t> bytes_by_device;
    std::vector<LeaseId> leases;  // in acquisition order
  };
  struct Session {
    std::string client_name;
    int pid = 0;
    bool connected = true;
    absl::Time disconnected_at = absl::InfiniteFuture();
    std::vector<LeaseId> leases;
  };

  // How many failed loads AwaitReady still reports after the residency ended.
  static constexpr size_t kMaxRecordedFailures = 256;

  // Ends one lease; returns the residency if that was its last lease.
  std::optional<EndedResidency> EndLeaseLocked(LeaseId lease) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends the residency with every lease still on it and wakes its waiters.
  EndedResidency EndResidencyLocked(ResidencyId id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  LeaseSnapshot SnapshotLeaseLocked(LeaseId lease) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  ResidencySnapshot SnapshotResidencyLocked(ResidencyId id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  const absl::Status* RecordedFailureLocked(ResidencyId id) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const absl::Duration grace_period_;
  mutable absl::Mutex mu_;
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 2;  // 1 is kPinSession
  absl::flat_hash_map<SessionId, Session> sessions_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<ResidencyId, Residency> residencies_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<LeaseId, Lease> leases_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<ModelKey, ResidencyId> by_key_ ABSL_GUARDED_BY(mu_);
  // Recent failed loads, oldest first, at most kMaxRecordedFailures.
  std::deque<std::pair<ResidencyId, absl::Status>> failures_ ABSL_GUARDED_BY(mu_);
  // Signalled whenever a residency leaves kLoading (ready, failed or ended).
  absl::CondVar state_changed_;
};

}  // namespace distorch

#endif  // DISTORCH_REGISTRY_H_
