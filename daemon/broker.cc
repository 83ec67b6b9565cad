#include "daemon/broker.h"

#include <malloc.h>

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "daemon/allocate_arenas.h"
#include "daemon/dtype_convert.h"
#include "daemon/loader.h"
#include "daemon/log.h"
#include "daemon/model_file.h"
#include "distorch/alloc_spec.h"
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

// ComfyUI's spellings to one canonical name (it is part of the model's key);
// refuses targets this build cannot convert to (see dtype_convert.h).
absl::StatusOr<WeightDtype> NormaliseDtype(const std::string& dtype) {
  return ParseWeightDtype(dtype);
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
  spdlog::info("session {} disconnected; its leases end in {} unless it was kept",
               session, absl::FormatDuration(config_.grace_period));
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
                 DescribeBytes(e.bytes_by_device),
                 e.was_loading ? " (after its load stops)" : "");
    // `resident` (and its arenas) go when the last reply or offer holding it
    // is done; usually right here.
  }
}

absl::StatusOr<PlanRequest> Broker::BuildPlanRequest(std::vector<TensorInfo> tensors,
                                                     const std::string& allocation,
                                                     const std::string& compute,
                                                     std::vector<std::string> pins,
                                                     bool allow_spill) const {
  PlanRequest request;
  request.tensors = std::move(tensors);
  request.pins = std::move(pins);
  request.allow_spill = allow_spill;
  std::optional<AllocSpec> spec;
  if (!allocation.empty()) {
    absl::StatusOr<AllocSpec> parsed = ParseAllocation(allocation);
    if (!parsed.ok()) return parsed.status();
    spec = *std::move(parsed);
  }
  if (!compute.empty()) {
    absl::StatusOr<DeviceId> id = ParseDeviceId(compute);
    if (!id.ok()) return id.status();
    request.compute = *id;
    // Checked here, not only by the planner, so an attach is refused too.
    if (spec.has_value() && spec->compute_device.has_value() &&
        *spec->compute_device != request.compute) {
      return absl::InvalidArgumentError(
          absl::StrCat("the allocation computes on ", spec->compute_device->ToString(),
                       " but the request on ", request.compute.ToString(),
                       ": give the same compute device to both"));
    }
  } else if (spec.has_value() && spec->compute_device.has_value()) {
    request.compute = *spec->compute_device;  // MultiGPU's "EXPERT#COMPUTE"
  } else {
    request.compute = devices_->DefaultCompute();
  }
  if (!spec.has_value()) {
    // No allocation: the whole model on the compute device.
    request.alloc.mode = AllocMode::kBytes;
    AllocEntry all;
    all.device = request.compute;
    all.is_rest = true;
    request.alloc.entries.push_back(all);
  } else {
    request.alloc = *std::move(spec);
  }
  request.devices = devices_->Inventory();
  return request;
}

absl::StatusOr<PlanOutcome> Broker::Plan(const PlanArgs& args) const {
  absl::StatusOr<std::vector<std::string>> prefixes = CanonicalTensorPrefixes(args.tensor_prefixes);
  if (!prefixes.ok()) return prefixes.status();
  absl::StatusOr<std::vector<size_t>> part = SelectTensorPart(args.tensors, *prefixes);
  if (!part.ok()) return part.status();
  std::vector<TensorInfo> tensors;
  tensors.reserve(part->size());
  for (size_t i : *part) tensors.push_back(args.tensors[i]);
  absl::StatusOr<PlanRequest> request = BuildPlanRequest(
      std::move(tensors), args.allocation, args.compute_device, args.pins, args.allow_spill);
  if (!request.ok()) return request.status();
  absl::StatusOr<Placement> placement = PlanPlacement(*request);
  if (!placement.ok()) return placement.status();
  return PlanOutcome{*std::move(placement), request->alloc.ToString(),
                     request->compute.ToString()};
}

LoadOutcome Broker::Outcome(std::shared_ptr<const Resident> resident, LeaseId lease,
                            bool shared) {
  LoadOutcome out;
  out.model = resident->id;
  out.lease = lease;
  out.shared = shared;
  FdOffer offer;
  for (const auto& arena : resident->arenas) {
    ArenaExport e = arena->Export();
    if (e.kind == ArenaExport::Kind::kHostMemfd) offer.fds.push_back(e.memfd);
  }
  offer.owner = resident->id;
  offer.keepalive = resident;
  out.arena_ticket = tickets_.Offer(std::move(offer));
  out.resident = std::move(resident);
  return out;
}

absl::StatusOr<LoadOutcome> Broker::Attach(
    ResidencyId id, LeaseId lease, const std::function<void(uint64_t, uint64_t)>& progress) {
  // Another session is loading it: wait, reporting its progress.
  while (true) {
    absl::Status ready = registry_.AwaitReady(id, absl::Milliseconds(200));
    std::shared_ptr<Resident> resident = FindResident(id);
    if (ready.ok()) {
      if (resident == nullptr) return absl::CancelledError("model was evicted while attaching");
      return Outcome(std::move(resident), lease, /*shared=*/true);
    }
    if (!absl::IsDeadlineExceeded(ready)) return ready;
    if (resident != nullptr && progress) progress(resident->bytes_loaded, resident->bytes_total);
  }
}

Broker::ResidencyChoice Broker::ChooseResidency(const ModelKey& model, bool own_placement,
                                                const std::string& allocation,
                                                const std::string& compute) const {
  ResidencyChoice choice;
  choice.new_key = model;
  std::vector<std::pair<ResidencyId, ModelKey>> same = registry_.FindSameModel(model);
  if (same.empty()) return choice;  // the first copy is the model's shared residency
  if (!own_placement) {
    // Sharing is the point: the shared residency, else the oldest other one.
    choice.attach = same.front();
    for (const auto& entry : same) {
      if (entry.second.placement.empty()) choice.attach = entry;
    }
    return choice;
  }
  bool have_shared = false;
  for (const auto& entry : same) {
    have_shared |= entry.second.placement.empty();
    std::shared_ptr<Resident> r = FindResident(entry.first);
    if (r != nullptr && r->allocation == allocation && r->compute_device == compute) {
      choice.attach = entry;
      return choice;
    }
  }
  // None is placed as asked: a residency of its own, keyed by its placement
  // (or the shared one, when only other own-placement residencies are left).
  if (have_shared) choice.new_key.placement = absl::StrCat(allocation, "@", compute);
  return choice;
}

absl::StatusOr<LoadOutcome> Broker::Load(
    const LoadArgs& args, const std::function<void(uint64_t, uint64_t)>& progress) {
  NoteActivity();  // a pin load holds no session until it leases the model
  const SessionId session = args.operator_pin ? kPinSession : args.session;
  absl::StatusOr<WeightDtype> dtype = NormaliseDtype(args.weight_dtype);
  if (!dtype.ok()) return dtype.status();
  absl::StatusOr<std::vector<std::string>> part = CanonicalTensorPrefixes(args.tensor_prefixes);
  if (!part.ok()) return part.status();
  absl::StatusOr<UniqueFd> fd = tickets_.TakeFile(args.file_ticket);
  if (!fd.ok()) return fd.status();
  absl::StatusOr<ModelFile> file = ReadModelFile(fd->get());
  if (file.ok()) {
    // A part of the file is a model of its own from here on: planned, laid
    // out, loaded and listed with only its tensors.
    if (absl::Status s = KeepTensorPart(*file, *part); !s.ok()) file = s;
  }
  if (!file.ok()) {
    return absl::Status(file.status().code(),
                        absl::StrCat("model '", args.name, "': ", file.status().message()));
  }
  // Planning, the arenas and the reply see the tensors as stored (converted).
  absl::StatusOr<std::vector<TensorInfo>> stored =
      StoredTensors(file->tensors, file->format, *dtype);
  if (!stored.ok()) {
    return absl::Status(stored.status().code(),
                        absl::StrCat("model '", args.name, "': ", stored.status().message()));
  }
  const ModelKey model_key{file->identity, absl::StrCat("dtype=", dtype->name), "", *part};
  const bool keep = args.keep_loaded || args.operator_pin;

  std::shared_ptr<Resident> resident;
  Registry::Acquired acquired;
  std::string attach_note;
  std::string wanted_allocation, wanted_compute;
  {
    absl::MutexLock plan_lock(&placement_mu_);
    // Parse the allocation and compute device even when attaching, so a bad
    // request is refused the same way whether the model is resident or not.
    absl::StatusOr<PlanRequest> request = BuildPlanRequest(
        *stored, args.allocation, args.compute_device, args.pins, args.allow_spill);
    if (!request.ok()) return request.status();
    wanted_allocation = request->alloc.ToString();
    wanted_compute = request->compute.ToString();
    // A residency to attach to may end between the choice and the lease (its
    // last lease goes outside this lock): then choose again.
    ResidencyChoice choice;
    for (int tries = 0; acquired.lease == 0; ++tries) {
      choice = ChooseResidency(model_key, args.own_placement, wanted_allocation, wanted_compute);
      if (!choice.attach.has_value()) break;
      if (tries == 3) {
        return absl::UnavailableError(absl::StrCat(
            "model '", args.name, "' kept ending while this load attached to it; try again"));
      }
      std::shared_ptr<Resident> current = FindResident(choice.attach->first);
      if (current != nullptr && !args.allocation.empty() &&
          (current->allocation != wanted_allocation ||
           (!args.compute_device.empty() && current->compute_device != wanted_compute))) {
        attach_note = absl::StrCat("already resident with allocation ", current->allocation,
                                   " (compute ", current->compute_device, "); the requested ",
                                   wanted_allocation, " (compute ", wanted_compute,
                                   ") was not applied: one copy is shared (ask with "
                                   "own_placement for a residency of its own)");
      }
      absl::StatusOr<Registry::Acquired> a =
          registry_.Acquire(session, choice.attach->second, args.name, keep, {});
      if (!a.ok()) return a.status();
      if (!a->must_load) {
        spdlog::info("session {} leased model {} '{}' (shared, keep_loaded={})", session,
                     a->residency, args.name, keep);
        acquired = *a;
      } else {
        (void)registry_.Evict(a->residency);  // it had ended: drop the empty one
        attach_note.clear();
      }
    }
    const ModelKey& key = choice.new_key;
    if (acquired.lease == 0 && !key.placement.empty()) {
      spdlog::info("session {} asked for its own placement of '{}' ({} on {}): loading a "
                   "second residency", session, args.name, wanted_allocation, wanted_compute);
    }
    if (acquired.lease == 0) {
      absl::StatusOr<Placement> placement = PlanPlacement(*request);
      if (!placement.ok()) {
        spdlog::warn("load of '{}' refused: {}", args.name, std::string(placement.status().message()));
        return placement.status();
      }
      resident = std::make_shared<Resident>();
      resident->name = args.name;
      resident->format = file->format;
      resident->weight_dtype = dtype->name;
      resident->tensor_prefixes = *part;
      resident->allocation = request->alloc.ToString();
      resident->compute_device = request->compute.ToString();
      ArenaLayoutOptions layout_options;
      layout_options.alignment = kArenaAlignment;
      layout_options.max_host_segments = std::max(1, config_.load_threads);
      layout_options.min_host_segment_bytes = config_.host_segment_min;
      resident->layout = ComputeArenaLayout(*stored, *placement, layout_options);
      resident->tensors = *std::move(stored);
      resident->tensor_type_names = std::move(file->tensor_type_names);
      resident->placement = *std::move(placement);
      absl::StatusOr<std::vector<std::unique_ptr<Arena>>> arenas =
          AllocateArenas(*devices_, resident->layout, args.name, config_.load_threads);
      if (!arenas.ok()) {
        spdlog::warn("load of '{}' failed allocating: {}", args.name,
                     std::string(arenas.status().message()));
        return arenas.status();
      }
      resident->arenas = *std::move(arenas);
      std::map<DeviceId, uint64_t> bytes_by_device;
      for (const auto& arena : resident->arenas) bytes_by_device[arena->device()] += arena->size();
      for (const TensorInfo& t : resident->tensors) resident->bytes_total += t.nbytes;
      absl::StatusOr<Registry::Acquired> a =
          registry_.Acquire(session, key, args.name, keep, bytes_by_device);
      if (!a.ok()) return a.status();
      acquired = *a;
      resident->id = acquired.residency;
      absl::MutexLock lock(&mu_);
      residents_[resident->id] = resident;
      spdlog::info("session {} loading model {} '{}'{} ({}, {} tensors, {}) with {} on {}", session,
                   resident->id, args.name,
                   part->empty() ? "" : absl::StrCat(" part ", TensorPartLabel(*part)),
                   resident->format, resident->tensors.size(), FormatBytes(resident->bytes_total),
                   resident->allocation, DescribeBytes(bytes_by_device));
    }
  }

  if (resident == nullptr) {
    absl::StatusOr<LoadOutcome> attached = Attach(acquired.residency, acquired.lease, progress);
    if (attached.ok()) {
      if (!attach_note.empty()) attached->notes.push_back(attach_note);
      attached->requested_allocation = wanted_allocation;
      attached->requested_compute_device = wanted_compute;
    }
    return attached;
  }

  // This call loads. Progress is reported from a watcher while readers run.
  absl::Notification done;
  std::thread watcher;
  if (progress) {
    watcher = std::thread([&] {
      while (!done.WaitForNotificationWithTimeout(absl::Milliseconds(100))) {
        progress(resident->bytes_loaded, resident->bytes_total);
      }
    });
  }
  absl::Time begin = absl::Now();
  LoadOptions options;
  options.threads = config_.load_threads;
  options.file_tensors = &file->tensors;
  options.cancel = &resident->cancelled;
  absl::Status loaded = LoadIntoArenas(fd->get(), *resident, options);
  for (auto& arena : resident->arenas) {
    if (!loaded.ok()) break;
    loaded = arena->Seal();
  }
  done.Notify();
  if (watcher.joinable()) watcher.join();
  if (!loaded.ok()) {
    spdlog::warn("model {} '{}' failed to load: {}", resident->id, args.name, std::string(loaded.message()));
    registry_.MarkFailed(resident->id, loaded);
    Dispose({EndedResidency{resident->id, args.name, {}, true}}, "its load failed");
    return loaded;
  }
  if (absl::Status ready = registry_.MarkReady(resident->id); !ready.ok()) {
    Dispose({EndedResidency{resident->id, args.name, {}, true}},
            "every lease went while it loaded");
    return absl::CancelledError(absl::StrCat("model '", args.name,
                                             "' was released while it loaded"));
  }
  double seconds = absl::ToDoubleSeconds(absl::Now() - begin);
  spdlog::info("model {} '{}' ready: {} in {:.2f} s ({:.2f} GB/s)", resident->id, args.name,
               FormatBytes(resident->bytes_total), seconds,
               seconds > 0 ? resident->bytes_total / seconds / 1e9 : 0.0);
  if (progress) progress(resident->bytes_total, resident->bytes_total);
  LoadOutcome outcome = Outcome(std::move(resident), acquired.lease, /*shared=*/false);
  outcome.requested_allocation = wanted_allocation;
  outcome.requested_compute_device = wanted_compute;
  return outcome;
}

absl::StatusOr<std::vector<EndedResidency>> Broker::Release(SessionId session, LeaseId lease) {
  absl::StatusOr<std::vector<EndedResidency>> ended = registry_.Release(session, lease);
  if (!ended.ok()) return ended.status();
  spdlog::info("session {} released lease {}", session, lease);
  Dispose(*ended, "its last lease was released");
  return ended;
}

absl::StatusOr<FreeOutcome> Broker::Free(SessionId session, bool all_sessions) {
  FreeOutcome out;
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
    spdlog::info("session {} set keep_loaded={} on model {} ({} lease(s))", session, keep,
                 model, *changed);
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
    if (listener) {
      for (const LeaseSnapshot& l : r.leases) listener(l.session, r.id, r.name);
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

}  // namespace distorch
