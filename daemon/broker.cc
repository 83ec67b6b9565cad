#include "daemon/broker.h"

#include <malloc.h>

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/load/allocate_arenas.h"
#include "daemon/load/copy_and_seal.h"
#include "daemon/load/load_outcome.h"
#include "daemon/load/new_resident.h"
#include "daemon/load/plan_request.h"
#include "daemon/load/residency_choice.h"
#include "daemon/log.h"
#include "distorch/tensor_part.h"
#include "distorch/units.h"

namespace distorch {
namespace {

std::string DescribeBytes(const std::map<DeviceId, uint64_t>& bytes) {
  if (bytes.empty()) return "nothing";
  return absl::StrJoin(bytes, ", ", [](std::string* out, const auto& kv) {
    absl::StrAppend(out, kv.first.ToString(), " ", FormatBytes(kv.second));
  });
}

}  // namespace

Broker::Broker(DaemonConfig config, std::unique_ptr<DeviceSet> devices)
    : config_(std::move(config)),
      devices_(std::move(devices)),
      started_(absl::Now()),
      registry_(config_.grace_period),
      last_busy_(started_) {
  reaper_ = std::thread([this] { ReapLoop(); });
}

Broker::~Broker() {
  stop_.Notify();
  reaper_.join();
  absl::MutexLock lock(&mu_);
  residents_.clear();
}

void Broker::SetEvictionListener(EvictionListener listener) {
  absl::MutexLock lock(&mu_);
  on_evicted_ = std::move(listener);
}

void Broker::ReapLoop() {
  // Grace periods are seconds long; checking four times a second is plenty.
  while (!stop_.WaitForNotificationWithTimeout(absl::Milliseconds(250))) {
    tickets_.Expire();
    std::vector<EndedResidency> ended = registry_.ReapExpired(absl::Now());
    if (!ended.empty()) Dispose(ended, "its last session ended (grace period over)");
  }
}

void Broker::NoteActivity() {
  absl::MutexLock lock(&mu_);
  last_busy_ = absl::Now();
}

absl::Duration Broker::IdleFor(absl::Time now) {
  // Closed sessions stay listed for their grace period, so a daemon whose last
  // client went idles from the end of that period.
  bool busy = !registry_.Residencies().empty();
  for (const SessionSnapshot& s : registry_.Sessions()) busy |= s.id != kPinSession;
  absl::MutexLock lock(&mu_);
  if (busy) last_busy_ = std::max(last_busy_, now);
  return std::max(absl::ZeroDuration(), now - last_busy_);
}

SessionId Broker::OpenSession(const std::string& client_name, int pid) {
  NoteActivity();
  SessionId id = registry_.OpenSession(client_name, pid);
  spdlog::info("session {} started: {} (pid {})", id, client_name, pid);
  return id;
}

void Broker::CloseSession(SessionId session) {
  registry_.CloseSession(session, absl::Now());
  spdlog::info("session {} disconnected; its leases end in {} unless it was kept", session,
               absl::FormatDuration(config_.grace_period));
}

std::shared_ptr<Resident> Broker::FindResident(ResidencyId id) const {
  absl::MutexLock lock(&mu_);
  auto it = residents_.find(id);
  return it == residents_.end() ? nullptr : it->second;
}

void Broker::Dispose(const std::vector<EndedResidency>& ended, absl::string_view why) {
  for (const EndedResidency& e : ended) {
    std::shared_ptr<Resident> resident;
    {
      absl::MutexLock lock(&mu_);
      auto it = residents_.find(e.id);
      if (it != residents_.end()) {
        resident = std::move(it->second);
        residents_.erase(it);
        resident->cancelled = true;
      }
    }
    tickets_.DropOffers(e.id);
    spdlog::info("model {} '{}' ejected: {}; freeing {}{}", e.id, e.name, why,
                 DescribeBytes(e.bytes_by_device), e.was_loading ? " (after its load stops)" : "");
    // `resident` (and its arenas) go when the last reply or offer holding it
    // is done; usually right here.
  }
}

absl::StatusOr<PlanOutcome> Broker::Plan(const PlanArgs& args) const {
  absl::StatusOr<std::vector<std::string>> prefixes = CanonicalTensorPrefixes(args.tensor_prefixes);
  if (!prefixes.ok()) return prefixes.status();
  absl::StatusOr<std::vector<size_t>> part = SelectTensorPart(args.tensors, *prefixes);
  if (!part.ok()) return part.status();
  std::vector<TensorInfo> tensors;
  tensors.reserve(part->size());
  for (size_t i : *part) tensors.push_back(args.tensors[i]);
  absl::StatusOr<PlanRequest> request =
      BuildPlanRequest(PlanInputs{std::move(tensors), args.allocation, args.compute_device,
                                  args.pins, args.allow_spill},
                       devices_->DefaultCompute(), devices_->Inventory());
  if (!request.ok()) return request.status();
  absl::StatusOr<Placement> placement = PlanPlacement(*request);
  if (!placement.ok()) return placement.status();
  return PlanOutcome{*std::move(placement), request->alloc.ToString(), request->compute.ToString()};
}

absl::StatusOr<LoadOutcome> Broker::Attach(ResidencyId id, LeaseId lease,
                                           const LoadProgress& progress) {
  // Another session is loading it: wait, reporting its progress.
  while (true) {
    absl::Status ready = registry_.AwaitReady(id, absl::Milliseconds(200));
    std::shared_ptr<Resident> resident = FindResident(id);
    if (ready.ok()) {
      if (resident == nullptr) return absl::CancelledError("model was evicted while attaching");
      return MakeLoadOutcome(tickets_, std::move(resident), lease, /*shared=*/true);
    }
    if (!absl::IsDeadlineExceeded(ready)) return ready;
    if (resident != nullptr && progress) progress(resident->bytes_loaded, resident->bytes_total);
  }
}

// The load pipeline, stage by stage (docs/architecture.md): fd from ticket →
// header → model key (OpenModel), then under the placement lock acquire-or-
// attach → plan → arena layout → allocate (PlaceOrAttach), then outside it
// copy → seal (CopyIn) → outcome.
absl::StatusOr<LoadOutcome> Broker::Load(const LoadArgs& args, const LoadProgress& progress) {
  NoteActivity();  // a pin load holds no session until it leases the model
  absl::StatusOr<OpenedModel> model = OpenModel(tickets_, args);
  if (!model.ok()) return model.status();
  absl::StatusOr<Placed> placed = PlaceOrAttach(args, *model);
  if (!placed.ok()) return placed.status();
  absl::StatusOr<LoadOutcome> outcome =
      placed->resident == nullptr
          ? Attach(placed->acquired.residency, placed->acquired.lease, progress)
          : CopyIn(args.name, *model, std::move(placed->resident), placed->acquired.lease,
                   progress);
  if (outcome.ok()) {
    if (!placed->note.empty()) outcome->notes.push_back(placed->note);
    outcome->requested_allocation = placed->wanted_allocation;
    outcome->requested_compute_device = placed->wanted_compute;
  }
  return outcome;
}

absl::StatusOr<Broker::Placed> Broker::PlaceOrAttach(const LoadArgs& args, OpenedModel& model) {
  const SessionId session = args.operator_pin ? kPinSession : args.session;
  const bool keep = args.keep_loaded || args.operator_pin;
  absl::MutexLock plan_lock(&placement_mu_);
  // Parse the allocation and compute device even when attaching, so a bad
  // request is refused the same way whether the model is resident or not.
  absl::StatusOr<PlanRequest> request =
      BuildPlanRequest(PlanInputs{model.header.stored, args.allocation, args.compute_device,
                                  args.pins, args.allow_spill},
                       devices_->DefaultCompute(), devices_->Inventory());
  if (!request.ok()) return request.status();
  Placed placed;
  placed.wanted_allocation = request->alloc.ToString();
  placed.wanted_compute = request->compute.ToString();
  absl::StatusOr<std::optional<ModelKey>> new_key =
      AcquireExisting(args, session, keep, model.key, &placed);
  if (!new_key.ok()) return new_key.status();
  if (!new_key->has_value()) return placed;  // attached
  if (!(*new_key)->placement.empty()) {
    spdlog::info(
        "session {} asked for its own placement of '{}' ({} on {}): loading a "
        "second residency",
        session, args.name, placed.wanted_allocation, placed.wanted_compute);
  }
  absl::StatusOr<std::shared_ptr<Resident>> resident = PlanAndAllocate(args.name, model, *request);
  if (!resident.ok()) return resident.status();
  std::map<DeviceId, uint64_t> bytes_by_device = ArenaBytes(**resident);
  absl::StatusOr<Registry::Acquired> a =
      registry_.Acquire(session, **new_key, args.name, keep, bytes_by_device);
  if (!a.ok()) return a.status();
  placed.acquired = *a;
  placed.resident = *std::move(resident);
  placed.resident->id = placed.acquired.residency;
  absl::MutexLock lock(&mu_);
  residents_[placed.resident->id] = placed.resident;
  const Resident& r = *placed.resident;
  spdlog::info("session {} loading model {} '{}'{} ({}, {} tensors, {}) with {} on {}", session,
               r.id, args.name,
               model.part.empty() ? "" : absl::StrCat(" part ", TensorPartLabel(model.part)),
               r.format, r.tensors.size(), FormatBytes(r.bytes_total), r.allocation,
               DescribeBytes(bytes_by_device));
  return placed;
}

absl::StatusOr<std::optional<ModelKey>> Broker::AcquireExisting(const LoadArgs& args,
                                                                SessionId session, bool keep,
                                                                const ModelKey& key,
                                                                Placed* placed) {
  // A residency to attach to may end between the choice and the lease (its
  // last lease goes outside the placement lock): then choose again.
  for (int tries = 0;; ++tries) {
    ResidencyChoice choice = ChooseResidency(registry_.FindSameModel(key), key, args.own_placement,
                                             placed->wanted_allocation, placed->wanted_compute,
                                             [this](ResidencyId id) { return FindResident(id); });
    if (!choice.attach.has_value()) return std::optional<ModelKey>(std::move(choice.new_key));
    if (tries == 3) {
      return absl::UnavailableError(absl::StrCat(
          "model '", args.name, "' kept ending while this load attached to it; try again"));
    }
    std::shared_ptr<Resident> current = FindResident(choice.attach->first);
    placed->note = current == nullptr
                       ? ""
                       : SharedPlacementNote(*current, args.allocation, args.compute_device,
                                             placed->wanted_allocation, placed->wanted_compute);
    absl::StatusOr<Registry::Acquired> a =
        registry_.Acquire(session, choice.attach->second, args.name, keep, {});
    if (!a.ok()) return a.status();
    if (!a->must_load) {
      spdlog::info("session {} leased model {} '{}' (shared, keep_loaded={})", session,
                   a->residency, args.name, keep);
      placed->acquired = *a;
      return std::optional<ModelKey>();
    }
    (void)registry_.Evict(a->residency);  // it had ended: drop the empty one
    placed->note.clear();
  }
}

absl::StatusOr<std::shared_ptr<Resident>> Broker::PlanAndAllocate(const std::string& name,
                                                                  OpenedModel& model,
                                                                  const PlanRequest& request) {
  absl::StatusOr<Placement> placement = PlanPlacement(request);
  if (!placement.ok()) {
    spdlog::warn("load of '{}' refused: {}", name, std::string(placement.status().message()));
    return placement.status();
  }
  std::shared_ptr<Resident> resident =
      LayOutResident(name, model, request, *std::move(placement),
                     LayoutSettings{config_.load_threads, config_.host_segment_min});
  absl::StatusOr<std::vector<std::unique_ptr<Arena>>> arenas =
      AllocateArenas(*devices_, resident->layout, name, config_.load_threads);
  if (!arenas.ok()) {
    spdlog::warn("load of '{}' failed allocating: {}", name,
                 std::string(arenas.status().message()));
    return arenas.status();
  }
  resident->arenas = *std::move(arenas);
  return resident;
}

absl::StatusOr<LoadOutcome> Broker::CopyIn(const std::string& name, const OpenedModel& model,
                                           std::shared_ptr<Resident> resident, LeaseId lease,
                                           const LoadProgress& progress) {
  absl::Time begin = absl::Now();
  absl::Status loaded = CopyAndSeal(model.fd.get(), *resident, model.header.file.tensors,
                                    config_.load_threads, progress);
  if (!loaded.ok()) {
    spdlog::warn("model {} '{}' failed to load: {}", resident->id, name,
                 std::string(loaded.message()));
    registry_.MarkFailed(resident->id, loaded);
    Dispose({EndedResidency{resident->id, name, {}, true}}, "its load failed");
    return loaded;
  }
  if (absl::Status ready = registry_.MarkReady(resident->id); !ready.ok()) {
    Dispose({EndedResidency{resident->id, name, {}, true}}, "every lease went while it loaded");
    return absl::CancelledError(absl::StrCat("model '", name, "' was released while it loaded"));
  }
  double seconds = absl::ToDoubleSeconds(absl::Now() - begin);
  spdlog::info("model {} '{}' ready: {} in {:.2f} s ({:.2f} GB/s)", resident->id, name,
               FormatBytes(resident->bytes_total), seconds,
               seconds > 0 ? resident->bytes_total / seconds / 1e9 : 0.0);
  if (progress) progress(resident->bytes_total, resident->bytes_total);
  return MakeLoadOutcome(tickets_, std::move(resident), lease, /*shared=*/false);
}

absl::StatusOr<FreeOutcome> Broker::Release(SessionId session, LeaseId lease) {
  FreeOutcome out;
  out.released.emplace_back();
  absl::StatusOr<std::vector<EndedResidency>> ended =
      registry_.Release(session, lease, &out.released.front());
  if (!ended.ok()) return ended.status();
  spdlog::info("session {} released lease {}", session, lease);
  out.ended = *std::move(ended);
  Dispose(out.ended, "its last lease was released");
  return out;
}

absl::StatusOr<FreeOutcome> Broker::Free(SessionId session, bool all_sessions, bool unload_models) {
  FreeOutcome out;
  if (!unload_models) return out;
  std::vector<SessionId> sessions;
  if (all_sessions) {
    for (const SessionSnapshot& s : registry_.Sessions()) {
      if (s.id != kPinSession) sessions.push_back(s.id);
    }
  } else {
    sessions.push_back(session);
  }
  for (SessionId id : sessions) {
    std::vector<EndedResidency> e = registry_.Free(id, &out.released);
    out.ended.insert(out.ended.end(), e.begin(), e.end());
  }
  spdlog::info("free from session {}: {} lease(s) released, {} model(s) ejected",
               all_sessions ? "(all)" : absl::StrCat(session), out.released.size(),
               out.ended.size());
  Dispose(out.ended, "freed (keep_loaded=false)");
  return out;
}

absl::StatusOr<uint64_t> Broker::SoftEmptyCache(SessionId session) {
  uint64_t trimmed = 0;
  for (const DeviceSet::Entry& e : devices_->entries()) trimmed += e.device->Trim();
  malloc_trim(0);
  spdlog::info("soft_empty_cache from session {}: trimmed {}", session, FormatBytes(trimmed));
  return trimmed;
}

absl::StatusOr<int> Broker::SetKeepLoaded(SessionId session, ResidencyId model, bool keep) {
  absl::StatusOr<int> changed = registry_.SetKeepLoaded(session, model, keep);
  if (changed.ok()) {
    spdlog::info("session {} set keep_loaded={} on model {} ({} lease(s))", session, keep, model,
                 *changed);
  }
  return changed;
}

absl::StatusOr<std::vector<EndedResidency>> Broker::Evict(ResidencyId model,
                                                          const std::string& name) {
  std::vector<ResidencySnapshot> targets;
  for (ResidencySnapshot& r : registry_.Residencies()) {
    if ((model != 0 && r.id == model) || (model == 0 && !name.empty() && r.name == name)) {
      targets.push_back(std::move(r));
    }
  }
  if (targets.empty()) {
    return absl::NotFoundError(model != 0 ? absl::StrCat("no model with id ", model)
                                          : absl::StrCat("no model named '", name, "'"));
  }
  std::vector<EndedResidency> ended;
  EvictionListener listener;
  {
    absl::MutexLock lock(&mu_);
    listener = on_evicted_;
  }
  for (const ResidencySnapshot& r : targets) {
    absl::StatusOr<EndedResidency> e = registry_.Evict(r.id);
    if (!e.ok()) continue;  // already gone
    ended.push_back(*e);
    // One event per session, from the leases the eviction ended (a session
    // may hold several leases on one model; the snapshot may be stale).
    if (listener) {
      for (SessionId session : e->holders) listener(session, e->id, e->name);
    }
  }
  Dispose(ended, "evicted by an operator");
  return ended;
}

std::vector<DeviceView> Broker::Devices() const {
  std::vector<DeviceView> out;
  for (const DeviceSet::Entry& e : devices_->entries()) {
    DeviceView v;
    v.name = e.device->id().ToString();
    v.kind = std::string(e.device->kind());
    v.description = e.device->description();
    v.stats = e.device->Stats();
    v.settings = e.settings;
    v.details = e.device->Details();
    v.available = v.stats.free > e.settings.reserve ? v.stats.free - e.settings.reserve : 0;
    out.push_back(std::move(v));
  }
  return out;
}

std::vector<ModelView> Broker::Models() const {
  std::vector<ModelView> out;
  for (ResidencySnapshot& r : registry_.Residencies()) {
    ModelView v;
    v.resident = FindResident(r.id);
    v.residency = std::move(r);
    out.push_back(std::move(v));
  }
  return out;
}

std::map<DeviceId, uint64_t> Broker::BrokerBytes() const { return registry_.BytesByDevice(); }

BrokerStatus Broker::Status() const {
  BrokerStatus status;
  status.uptime = absl::Now() - started_;
  status.socket_path = config_.socket_path;
  status.fd_channel_path = config_.fd_channel_path();
  status.grace_period = config_.grace_period;
  status.cuda_available = devices_->cuda_available();
  status.cuda_note = devices_->cuda_note();
  for (const SessionSnapshot& s : registry_.Sessions()) status.sessions += (s.id != kPinSession);
  status.models = static_cast<uint32_t>(registry_.Residencies().size());
  status.broker_bytes = registry_.BytesByDevice();
  return status;
}

}  // namespace distorch
