// The keep/eject state machine (DESIGN.md §6). Every operation runs under mu_
// and leaves these invariants true when it returns:
//   - every residency has at least one lease, and by_key_ maps its key to it;
//   - every lease is listed, once, by its session and by its residency;
//   - kPinSession exists and is connected.
// Ending a lease never ends another lease as a side effect, except when the
// whole residency ends (Evict, MarkFailed), so callers may walk a copied list
// of lease ids and end them one by one.
#include "distorch/registry.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace distorch {
namespace {

template <typename T>
void EraseValue(std::vector<T>& values, const T& value) {
  auto it = std::find(values.begin(), values.end(), value);
  if (it != values.end()) values.erase(it);
}

template <typename Map>
std::vector<typename Map::key_type> SortedKeys(const Map& map) {
  std::vector<typename Map::key_type> keys;
  keys.reserve(map.size());
  for (const auto& [key, value] : map) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  return keys;
}

}  // namespace

Registry::Registry(absl::Duration grace_period) : grace_period_(grace_period) {
  absl::MutexLock lock(&mu_);
  Session pins;
  pins.client_name = "pins";
  sessions_.emplace(kPinSession, std::move(pins));
}

SessionId Registry::OpenSession(std::string client_name, int pid) {
  absl::MutexLock lock(&mu_);
  SessionId id = next_id_++;
  Session session;
  session.client_name = std::move(client_name);
  session.pid = pid;
  sessions_.emplace(id, std::move(session));
  return id;
}

void Registry::CloseSession(SessionId session, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (session == kPinSession) return;  // pins outlive every client
  auto it = sessions_.find(session);
  if (it == sessions_.end() || !it->second.connected) return;
  it->second.connected = false;
  it->second.disconnected_at = now;
}

std::vector<EndedResidency> Registry::ReapExpired(absl::Time now) {
  absl::MutexLock lock(&mu_);
  std::vector<SessionId> expired;
  for (const auto& [id, session] : sessions_) {
    if (!session.connected && now - session.disconnected_at >= grace_period_) {
      expired.push_back(id);
    }
  }
  std::sort(expired.begin(), expired.end());
  std::vector<EndedResidency> ended;
  for (SessionId id : expired) {
    const std::vector<LeaseId> leases = sessions_.at(id).leases;
    for (LeaseId lease : leases) {
      if (std::optional<EndedResidency> e = EndLeaseLocked(lease)) {
        ended.push_back(std::move(*e));
      }
    }
    sessions_.erase(id);
  }
  return ended;
}

absl::StatusOr<Registry::Acquired> Registry::Acquire(SessionId session, const ModelKey& key,
                                                     std::string name, bool keep_loaded,
                                                     std::map<DeviceId, uint64_t> bytes_by_device) {
  absl::MutexLock lock(&mu_);
  auto s = sessions_.find(session);
  if (s == sessions_.end()) {
    return absl::FailedPreconditionError(
        absl::StrCat("session ", session,
                     " is unknown (never opened, or closed and its grace period "
                     "passed): open a new session before loading '",
                     name, "'"));
  }
  if (!s->second.connected) {
    return absl::FailedPreconditionError(
        absl::StrCat("session ", session,
                     " is closed (its stream ended): open a new session before "
                     "loading '",
                     name, "'"));
  }
  Acquired out;
  auto existing = by_key_.find(key);
  if (existing != by_key_.end()) {
    out.residency = existing->second;
  } else {
    out.residency = next_id_++;
    out.must_load = true;
    Residency residency;
    residency.key = key;
    residency.name = std::move(name);
    residency.bytes_by_device = std::move(bytes_by_device);
    residencies_.emplace(out.residency, std::move(residency));
    by_key_.emplace(key, out.residency);
  }
  out.lease = next_id_++;
  // A pin is the operator's promise that the model stays: no /free may drop it.
  if (session == kPinSession) keep_loaded = true;
  leases_.emplace(out.lease, Lease{session, out.residency, keep_loaded});
  residencies_.at(out.residency).leases.push_back(out.lease);
  s->second.leases.push_back(out.lease);
  return out;
}

std::optional<ResidencyId> Registry::Find(const ModelKey& key) const {
  absl::MutexLock lock(&mu_);
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::pair<ResidencyId, ModelKey>> Registry::FindSameModel(const ModelKey& key) const {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<ResidencyId, ModelKey>> out;
  for (const auto& [k, id] : by_key_) {
    if (k.SameModel(key)) out.emplace_back(id, k);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return out;
}

absl::Status Registry::MarkReady(ResidencyId residency) {
  absl::MutexLock lock(&mu_);
  auto it = residencies_.find(residency);
  if (it == residencies_.end()) {
    return absl::CancelledError(
        absl::StrCat("residency ", residency,
                     " ended while it loaded (every lease was released or it "
                     "was evicted): free the memory the load filled"));
  }
  if (it->second.state != ResidencyState::kLoading) {
    return absl::FailedPreconditionError(
        absl::StrCat("residency ", residency, " ('", it->second.name, "') is ",
                     ResidencyStateName(it->second.state),
                     ", not loading: only its loader marks it ready, once"));
  }
  it->second.state = ResidencyState::kReady;
  state_changed_.SignalAll();
  return absl::OkStatus();
}

void Registry::MarkFailed(ResidencyId residency, absl::Status why) {
  absl::MutexLock lock(&mu_);
  auto it = residencies_.find(residency);
  // Gone already: its waiters were told Cancelled. Ready: the load did not
  // fail, and ending it here would hide memory from whoever must free it.
  if (it == residencies_.end() || it->second.state != ResidencyState::kLoading) return;
  if (why.ok()) {
    why = absl::InternalError(
        absl::StrCat("loading '", it->second.name, "' failed without a reason"));
  }
  failures_.emplace_back(residency, std::move(why));
  while (failures_.size() > kMaxRecordedFailures) failures_.pop_front();
  EndResidencyLocked(residency);
}

absl::Status Registry::AwaitReady(ResidencyId residency, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::MutexLock lock(&mu_);
  bool timed_out = false;
  while (true) {
    auto it = residencies_.find(residency);
    if (it == residencies_.end()) {
      if (const absl::Status* failure = RecordedFailureLocked(residency)) return *failure;
      return absl::CancelledError(
          absl::StrCat("residency ", residency,
                       " ended before it was ready (every lease was released "
                       "or it was evicted)"));
    }
    if (it->second.state == ResidencyState::kReady) return absl::OkStatus();
    if (timed_out) {
      return absl::DeadlineExceededError(absl::StrCat("'", it->second.name, "' (residency ",
                                                      residency, ") is still loading after ",
                                                      absl::FormatDuration(timeout)));
    }
    timed_out = state_changed_.WaitWithDeadline(&mu_, deadline);
  }
}

std::vector<EndedResidency> Registry::Free(SessionId session,
                                           std::vector<LeaseSnapshot>* released) {
  absl::MutexLock lock(&mu_);
  auto s = sessions_.find(session);
  if (s == sessions_.end()) return {};
  std::vector<LeaseId> unkept;
  for (LeaseId lease : s->second.leases) {
    if (!leases_.at(lease).keep_loaded) unkept.push_back(lease);
  }
  // Nothing flagged: the loop below does nothing, so no state, order or id
  // changes (§6 strict no-op; never "unload everything").
  std::vector<EndedResidency> ended;
  for (LeaseId lease : unkept) {
    if (released != nullptr) released->push_back(SnapshotLeaseLocked(lease));
    if (std::optional<EndedResidency> e = EndLeaseLocked(lease)) {
      ended.push_back(std::move(*e));
    }
  }
  return ended;
}

absl::StatusOr<std::vector<EndedResidency>> Registry::Release(SessionId session, LeaseId lease,
                                                              LeaseSnapshot* released) {
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(lease);
  if (it == leases_.end() || it->second.session != session) {
    return absl::NotFoundError(absl::StrCat("session ", session, " holds no lease ", lease,
                                            " (already released, freed, or another session's)"));
  }
  if (released != nullptr) *released = SnapshotLeaseLocked(lease);
  std::vector<EndedResidency> ended;
  if (std::optional<EndedResidency> e = EndLeaseLocked(lease)) ended.push_back(std::move(*e));
  return ended;
}

absl::StatusOr<int> Registry::SetKeepLoaded(SessionId session, ResidencyId residency, bool keep) {
  absl::MutexLock lock(&mu_);
  std::vector<LeaseId> held;
  if (auto s = sessions_.find(session); s != sessions_.end()) {
    for (LeaseId lease : s->second.leases) {
      if (leases_.at(lease).residency == residency) held.push_back(lease);
    }
  }
  if (held.empty()) {
    return absl::NotFoundError(
        absl::StrCat("session ", session, " holds no lease on residency ", residency));
  }
  if (session == kPinSession && !keep) {
    return absl::FailedPreconditionError(
        absl::StrCat("residency ", residency,
                     " is pinned and pins are always kept: release the pin "
                     "or evict the model instead"));
  }
  int changed = 0;
  for (LeaseId lease : held) {
    Lease& l = leases_.at(lease);
    if (l.keep_loaded != keep) {
      l.keep_loaded = keep;
      ++changed;
    }
  }
  return changed;
}

absl::StatusOr<EndedResidency> Registry::Evict(ResidencyId residency) {
  absl::MutexLock lock(&mu_);
  if (!residencies_.contains(residency)) {
    return absl::NotFoundError(absl::StrCat("no residency ", residency,
                                            " (already freed or evicted; 'distorchctl models' "
                                            "lists what is loaded)"));
  }
  return EndResidencyLocked(residency);
}

std::map<DeviceId, uint64_t> Registry::BytesByDevice() const {
  absl::MutexLock lock(&mu_);
  std::map<DeviceId, uint64_t> total;
  for (const auto& [id, residency] : residencies_) {
    for (const auto& [device, bytes] : residency.bytes_by_device) total[device] += bytes;
  }
  return total;
}

std::vector<ResidencySnapshot> Registry::Residencies() const {
  absl::MutexLock lock(&mu_);
  std::vector<ResidencySnapshot> out;
  for (ResidencyId id : SortedKeys(residencies_)) out.push_back(SnapshotResidencyLocked(id));
  return out;
}

std::vector<SessionSnapshot> Registry::Sessions() const {
  absl::MutexLock lock(&mu_);
  std::vector<SessionSnapshot> out;
  for (SessionId id : SortedKeys(sessions_)) {
    const Session& session = sessions_.at(id);
    SessionSnapshot snap;
    snap.id = id;
    snap.client_name = session.client_name;
    snap.pid = session.pid;
    snap.connected = session.connected;
    snap.disconnected_at = session.disconnected_at;
    for (LeaseId lease : session.leases) snap.leases.push_back(SnapshotLeaseLocked(lease));
    out.push_back(std::move(snap));
  }
  return out;
}

absl::StatusOr<ResidencySnapshot> Registry::GetResidency(ResidencyId residency) const {
  absl::MutexLock lock(&mu_);
  if (!residencies_.contains(residency)) {
    return absl::NotFoundError(absl::StrCat("no residency ", residency,
                                            " (its last lease ended, its load failed, or it was "
                                            "evicted)"));
  }
  return SnapshotResidencyLocked(residency);
}

std::optional<EndedResidency> Registry::EndLeaseLocked(LeaseId lease) {
  auto it = leases_.find(lease);
  if (it == leases_.end()) return std::nullopt;
  const Lease l = it->second;
  Residency& residency = residencies_.at(l.residency);
  if (residency.leases.size() == 1) return EndResidencyLocked(l.residency);
  EraseValue(residency.leases, lease);
  EraseValue(sessions_.at(l.session).leases, lease);
  leases_.erase(it);
  return std::nullopt;
}

EndedResidency Registry::EndResidencyLocked(ResidencyId id) {
  auto it = residencies_.find(id);
  Residency& residency = it->second;
  EndedResidency ended;
  ended.id = id;
  ended.name = residency.name;
  ended.bytes_by_device = residency.bytes_by_device;
  ended.was_loading = residency.state == ResidencyState::kLoading;
  for (LeaseId lease : residency.leases) {
    const SessionId session = leases_.at(lease).session;
    EraseValue(sessions_.at(session).leases, lease);
    leases_.erase(lease);
    ended.holders.push_back(session);
  }
  std::sort(ended.holders.begin(), ended.holders.end());
  ended.holders.erase(std::unique(ended.holders.begin(), ended.holders.end()), ended.holders.end());
  by_key_.erase(residency.key);
  residencies_.erase(it);
  // Waiters re-check: a vanished residency means Cancelled or its failure.
  state_changed_.SignalAll();
  return ended;
}

LeaseSnapshot Registry::SnapshotLeaseLocked(LeaseId lease) const {
  const Lease& l = leases_.at(lease);
  LeaseSnapshot snap;
  snap.lease = lease;
  snap.session = l.session;
  snap.residency = l.residency;
  snap.model_name = residencies_.at(l.residency).name;
  snap.keep_loaded = l.keep_loaded;
  return snap;
}

ResidencySnapshot Registry::SnapshotResidencyLocked(ResidencyId id) const {
  const Residency& residency = residencies_.at(id);
  ResidencySnapshot snap;
  snap.id = id;
  snap.key = residency.key;
  snap.name = residency.name;
  snap.state = residency.state;
  snap.bytes_by_device = residency.bytes_by_device;
  for (LeaseId lease : residency.leases) snap.leases.push_back(SnapshotLeaseLocked(lease));
  return snap;
}

const absl::Status* Registry::RecordedFailureLocked(ResidencyId id) const {
  for (auto it = failures_.rbegin(); it != failures_.rend(); ++it) {
    if (it->first == id) return &it->second;
  }
  return nullptr;
}

}  // namespace distorch
