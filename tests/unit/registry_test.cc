// Registry semantics on one thread: the DESIGN.md §6 keep/eject matrix,
// sessions and their grace period, pins, eviction and snapshots. Threaded
// cases (waiters, concurrent Acquire) are in registry_threads_test.cc.
#include "distorch/registry.h"

#include <catch2/catch.hpp>
#include <string>
#include <vector>

namespace distorch {
namespace {

const absl::Duration kGrace = absl::Seconds(30);
const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

ModelKey Key(const std::string& file) { return ModelKey{file, "dtype=keep", ""}; }

std::map<DeviceId, uint64_t> Bytes(uint64_t cuda0, uint64_t cpu) {
  return {{DeviceId::Cuda(0), cuda0}, {DeviceId::Cpu(), cpu}};
}

// Acquires `file` for `session` and marks it ready when this lease loads it.
Registry::Acquired Load(Registry& registry, SessionId session, const std::string& file, bool keep,
                        uint64_t bytes = 100) {
  absl::StatusOr<Registry::Acquired> acquired =
      registry.Acquire(session, Key(file), file, keep, Bytes(bytes, 2 * bytes));
  REQUIRE(acquired.ok());
  if (acquired->must_load) REQUIRE(registry.MarkReady(acquired->residency).ok());
  return *acquired;
}

std::vector<LeaseId> LeasesOf(const Registry& registry, SessionId session) {
  for (const SessionSnapshot& s : registry.Sessions()) {
    if (s.id != session) continue;
    std::vector<LeaseId> ids;
    for (const LeaseSnapshot& l : s.leases) ids.push_back(l.lease);
    return ids;
  }
  return {};
}

TEST_CASE("Free ends only unkept leases (DESIGN.md §6 matrix)", "[registry]") {
  Registry registry(kGrace);
  SessionId comfy = registry.OpenSession("ComfyUI", 4242);

  SECTION("A(keep=false), B(keep=true), C(keep=true): A goes, B and C stay") {
    auto a = Load(registry, comfy, "a.safetensors", false, 100);
    auto b = Load(registry, comfy, "b.safetensors", true, 200);
    auto c = Load(registry, comfy, "c.safetensors", true, 300);

    std::vector<LeaseSnapshot> released;
    std::vector<EndedResidency> ended = registry.Free(comfy, &released);

    REQUIRE(ended.size() == 1);
    CHECK(ended[0].id == a.residency);
    CHECK(ended[0].name == "a.safetensors");
    CHECK(ended[0].bytes_by_device == Bytes(100, 200));
    CHECK_FALSE(ended[0].was_loading);
    CHECK(ended[0].holders == std::vector<SessionId>{comfy});
    REQUIRE(released.size() == 1);
    CHECK(released[0].lease == a.lease);

    CHECK(registry.GetResidency(a.residency).status().code() == absl::StatusCode::kNotFound);
    CHECK_FALSE(registry.Find(Key("a.safetensors")).has_value());
    for (const auto& kept : {b, c}) {
      absl::StatusOr<ResidencySnapshot> snap = registry.GetResidency(kept.residency);
      REQUIRE(snap.ok());
      CHECK(snap->state == ResidencyState::kReady);
      REQUIRE(snap->leases.size() == 1);
      CHECK(snap->leases[0].keep_loaded);
    }
    CHECK(LeasesOf(registry, comfy) == std::vector<LeaseId>{b.lease, c.lease});
    CHECK(registry.BytesByDevice() == Bytes(500, 1000));
  }

  SECTION("D(keep=true), E(keep=true): Free changes nothing at all") {
    Load(registry, comfy, "d.safetensors", true);
    Load(registry, comfy, "e.safetensors", true);
    SessionId other = registry.OpenSession("ComfyUI", 4243);
    const LeaseId last_id = Load(registry, other, "d.safetensors", true).lease;

    const std::vector<ResidencySnapshot> residencies = registry.Residencies();
    const std::vector<SessionSnapshot> sessions = registry.Sessions();
    const auto bytes = registry.BytesByDevice();

    std::vector<LeaseSnapshot> released;
    CHECK(registry.Free(comfy, &released).empty());
    CHECK(released.empty());

    CHECK(registry.Residencies() == residencies);
    CHECK(registry.Sessions() == sessions);
    CHECK(registry.BytesByDevice() == bytes);
    // No id was spent either: the next one follows the last Acquire's lease.
    CHECK(registry.OpenSession("probe", 1) == last_id + 1);
  }
}

TEST_CASE("Free and keep_loaded edge cases", "[registry]") {
  Registry registry(kGrace);
  SessionId comfy = registry.OpenSession("ComfyUI", 4242);

  SECTION("one session leases one model twice, one kept and one not") {
    auto kept = Load(registry, comfy, "flux.safetensors", true);
    auto unkept = Load(registry, comfy, "flux.safetensors", false);
    CHECK(kept.must_load);
    CHECK_FALSE(unkept.must_load);
    CHECK(unkept.residency == kept.residency);
    CHECK(unkept.lease != kept.lease);

    CHECK(registry.Free(comfy).empty());  // the kept lease holds the residency
    CHECK(LeasesOf(registry, comfy) == std::vector<LeaseId>{kept.lease});

    absl::StatusOr<int> changed = registry.SetKeepLoaded(comfy, kept.residency, false);
    REQUIRE(changed.ok());
    CHECK(*changed == 1);
    std::vector<EndedResidency> ended = registry.Free(comfy);
    REQUIRE(ended.size() == 1);
    CHECK(ended[0].id == kept.residency);
  }

  SECTION("keep flag set after load protects the model") {
    auto a = Load(registry, comfy, "a.safetensors", false);
    CHECK(*registry.SetKeepLoaded(comfy, a.residency, true) == 1);
    CHECK(*registry.SetKeepLoaded(comfy, a.residency, true) == 0);  // already kept
    CHECK(registry.Free(comfy).empty());
    CHECK(registry.GetResidency(a.residency).ok());
  }

  SECTION("keep flag cleared after load lets Free end the model") {
    auto a = Load(registry, comfy, "a.safetensors", true);
    Load(registry, comfy, "a.safetensors", true);
    CHECK(*registry.SetKeepLoaded(comfy, a.residency, false) == 2);
    CHECK(registry.Free(comfy).size() == 1);
    CHECK(registry.Residencies().empty());
  }

  SECTION("SetKeepLoaded on a residency the session does not hold") {
    SessionId other = registry.OpenSession("ComfyUI", 4243);
    auto a = Load(registry, other, "a.safetensors", false);
    absl::StatusOr<int> changed = registry.SetKeepLoaded(comfy, a.residency, true);
    CHECK(changed.status().code() == absl::StatusCode::kNotFound);
    CHECK(std::string(changed.status().message()) == "session " + std::to_string(comfy) +
                                                         " holds no lease on residency " +
                                                         std::to_string(a.residency));
  }

  SECTION("Free during a load: the load is cancelled") {
    absl::StatusOr<Registry::Acquired> a =
        registry.Acquire(comfy, Key("wan.safetensors"), "wan", false, Bytes(10, 0));
    REQUIRE(a.ok());
    REQUIRE(a->must_load);
    std::vector<EndedResidency> ended = registry.Free(comfy);
    REQUIRE(ended.size() == 1);
    CHECK(ended[0].was_loading);
    CHECK(registry.MarkReady(a->residency).code() == absl::StatusCode::kCancelled);
    CHECK(registry.AwaitReady(a->residency, absl::ZeroDuration()).code() ==
          absl::StatusCode::kCancelled);
    CHECK(registry.BytesByDevice().empty());

    // The next load of the same file starts afresh under a new id.
    auto again = registry.Acquire(comfy, Key("wan.safetensors"), "wan", false, {});
    REQUIRE(again.ok());
    CHECK(again->must_load);
    CHECK(again->residency > a->residency);
  }

  SECTION("two sessions share one residency; one frees, it stays") {
    SessionId other = registry.OpenSession("ComfyUI", 4243);
    auto mine = Load(registry, comfy, "sdxl.safetensors", false);
    auto theirs = Load(registry, other, "sdxl.safetensors", false);
    CHECK_FALSE(theirs.must_load);
    CHECK(theirs.residency == mine.residency);

    std::vector<LeaseSnapshot> released;
    CHECK(registry.Free(comfy, &released).empty());
    REQUIRE(released.size() == 1);  // the lease went, the residency did not
    CHECK(released[0].model_name == "sdxl.safetensors");
    absl::StatusOr<ResidencySnapshot> snap = registry.GetResidency(mine.residency);
    REQUIRE(snap.ok());
    REQUIRE(snap->leases.size() == 1);
    CHECK(snap->leases[0].session == other);

    CHECK(registry.Free(other).size() == 1);
  }
}

TEST_CASE("Release ends one lease of the caller's own", "[registry]") {
  Registry registry(kGrace);
  SessionId s1 = registry.OpenSession("ComfyUI", 1);
  SessionId s2 = registry.OpenSession("ComfyUI", 2);
  auto a = Load(registry, s1, "a.safetensors", true);
  auto b = Load(registry, s2, "a.safetensors", true);

  auto wrong = registry.Release(s2, a.lease);
  CHECK(wrong.status().code() == absl::StatusCode::kNotFound);
  CHECK(std::string(wrong.status().message()) ==
        "session " + std::to_string(s2) + " holds no lease " + std::to_string(a.lease) +
            " (already released, freed, or another session's)");

  LeaseSnapshot released;
  auto first = registry.Release(s1, a.lease, &released);
  REQUIRE(first.ok());
  CHECK(first->empty());
  CHECK(released.lease == a.lease);
  CHECK(released.keep_loaded);
  CHECK(registry.Release(s1, a.lease).status().code() == absl::StatusCode::kNotFound);

  auto last = registry.Release(s2, b.lease);
  REQUIRE(last.ok());
  REQUIRE(last->size() == 1);
  CHECK((*last)[0].holders == std::vector<SessionId>{s2});
}

TEST_CASE("Closed sessions keep their leases for the grace period", "[registry]") {
  Registry registry(kGrace);
  SessionId gone = registry.OpenSession("ComfyUI", 7);
  SessionId stays = registry.OpenSession("ComfyUI", 8);
  auto own = Load(registry, gone, "own.safetensors", true);
  auto shared = Load(registry, gone, "shared.safetensors", false);
  Load(registry, stays, "shared.safetensors", false);

  registry.CloseSession(gone, kT0);
  registry.CloseSession(gone, kT0 + absl::Seconds(5));  // the first close counts

  absl::StatusOr<Registry::Acquired> refused =
      registry.Acquire(gone, Key("x.safetensors"), "x.safetensors", false, {});
  CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(std::string(refused.status().message()) ==
        "session " + std::to_string(gone) +
            " is closed (its stream ended): open a new session before loading "
            "'x.safetensors'");

  CHECK(registry.ReapExpired(kT0 + kGrace - absl::Milliseconds(1)).empty());
  SessionSnapshot closed = registry.Sessions()[1];
  CHECK(closed.id == gone);
  CHECK_FALSE(closed.connected);
  CHECK(closed.disconnected_at == kT0);
  CHECK(closed.leases.size() == 2);

  std::vector<EndedResidency> ended = registry.ReapExpired(kT0 + kGrace);
  REQUIRE(ended.size() == 1);  // the shared one lives on in `stays`
  CHECK(ended[0].id == own.residency);
  CHECK(registry.GetResidency(shared.residency).ok());
  std::vector<SessionSnapshot> sessions = registry.Sessions();
  REQUIRE(sessions.size() == 2);
  CHECK(sessions[0].id == kPinSession);
  CHECK(sessions[1].id == stays);

  refused = registry.Acquire(gone, Key("x.safetensors"), "x.safetensors", false, {});
  CHECK(std::string(refused.status().message()) ==
        "session " + std::to_string(gone) +
            " is unknown (never opened, or closed and its grace period passed): open a "
            "new session before loading 'x.safetensors'");
  CHECK(registry.ReapExpired(kT0 + 10 * kGrace).empty());
}

TEST_CASE("Pins survive everything except Evict", "[registry]") {
  Registry registry(kGrace);
  SessionId comfy = registry.OpenSession("ComfyUI", 9);
  auto pin = Load(registry, kPinSession, "vae.safetensors", /*keep=*/false);
  auto use = Load(registry, comfy, "vae.safetensors", false);
  CHECK(use.residency == pin.residency);

  absl::StatusOr<ResidencySnapshot> snap = registry.GetResidency(pin.residency);
  REQUIRE(snap.ok());
  CHECK(snap->leases[0].keep_loaded);  // a pin is always kept

  CHECK(registry.Free(comfy).empty());
  CHECK(registry.Free(kPinSession).empty());
  registry.CloseSession(kPinSession, kT0);
  registry.CloseSession(comfy, kT0);
  CHECK(registry.ReapExpired(kT0 + 100 * kGrace).empty());
  absl::StatusOr<int> unpin = registry.SetKeepLoaded(kPinSession, pin.residency, false);
  CHECK(unpin.status().code() == absl::StatusCode::kFailedPrecondition);

  std::vector<SessionSnapshot> sessions = registry.Sessions();
  REQUIRE(sessions.size() == 1);
  CHECK(sessions[0].id == kPinSession);
  CHECK(sessions[0].connected);
  CHECK(sessions[0].leases.size() == 1);

  absl::StatusOr<EndedResidency> evicted = registry.Evict(pin.residency);
  REQUIRE(evicted.ok());
  CHECK(evicted->holders == std::vector<SessionId>{kPinSession});
  CHECK(registry.Sessions()[0].leases.empty());
  CHECK(registry.Evict(pin.residency).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("Evict ends every lease on the residency", "[registry]") {
  Registry registry(kGrace);
  SessionId s1 = registry.OpenSession("ComfyUI", 1);
  SessionId s2 = registry.OpenSession("ComfyUI", 2);
  auto a = registry.Acquire(s2, Key("a"), "a", true, Bytes(5, 5));
  REQUIRE(a.ok());
  REQUIRE(registry.Acquire(s1, Key("a"), "a", true, {}).ok());
  REQUIRE(registry.Acquire(s2, Key("a"), "a", false, {}).ok());
  auto b = Load(registry, s1, "b", true);

  absl::StatusOr<EndedResidency> evicted = registry.Evict(a->residency);
  REQUIRE(evicted.ok());
  CHECK(evicted->was_loading);
  CHECK(evicted->holders == std::vector<SessionId>{s1, s2});
  CHECK(LeasesOf(registry, s1) == std::vector<LeaseId>{b.lease});
  CHECK(LeasesOf(registry, s2).empty());
  CHECK(registry.MarkReady(a->residency).code() == absl::StatusCode::kCancelled);
  CHECK(registry.AwaitReady(a->residency, absl::Seconds(1)).code() == absl::StatusCode::kCancelled);
}

TEST_CASE("Snapshots are ordered by id and bytes add up", "[registry]") {
  Registry registry(kGrace);
  SessionId s = registry.OpenSession("ComfyUI", 1);
  std::vector<ResidencyId> ids;
  for (int i = 0; i < 20; ++i) {
    ids.push_back(Load(registry, s, "m" + std::to_string(i), true, 10).residency);
  }
  absl::StatusOr<Registry::Acquired> loading =
      registry.Acquire(s, Key("big"), "big", true, {{DeviceId::Cuda(1), 1000}});
  REQUIRE(loading.ok());

  std::vector<ResidencySnapshot> all = registry.Residencies();
  REQUIRE(all.size() == 21);
  for (size_t i = 0; i + 1 < all.size(); ++i) CHECK(all[i].id < all[i + 1].id);
  CHECK(all.back().state == ResidencyState::kLoading);
  CHECK(std::string(ResidencyStateName(all.back().state)) == "loading");
  CHECK(registry.BytesByDevice() == std::map<DeviceId, uint64_t>{{DeviceId::Cpu(), 400},
                                                                 {DeviceId::Cuda(0), 200},
                                                                 {DeviceId::Cuda(1), 1000}});

  // Ids are never reused, even after everything ends.
  REQUIRE(registry.SetKeepLoaded(s, ids[0], false).ok());
  REQUIRE(registry.Free(s).size() == 1);
  CHECK(registry.OpenSession("next", 2) > loading->lease);
}

TEST_CASE("MarkReady and MarkFailed misuse", "[registry]") {
  Registry registry(kGrace);
  SessionId s = registry.OpenSession("ComfyUI", 1);
  auto a = Load(registry, s, "a", true);
  absl::Status twice = registry.MarkReady(a.residency);
  CHECK(twice.code() == absl::StatusCode::kFailedPrecondition);
  registry.MarkFailed(a.residency, absl::InternalError("late"));  // ready: ignored
  CHECK(registry.AwaitReady(a.residency, absl::ZeroDuration()).ok());

  auto b = registry.Acquire(s, Key("b"), "b", true, {});
  REQUIRE(b.ok());
  registry.MarkFailed(b->residency, absl::OkStatus());
  absl::Status why = registry.AwaitReady(b->residency, absl::ZeroDuration());
  CHECK(why.code() == absl::StatusCode::kInternal);
  CHECK(std::string(why.message()) == "loading 'b' failed without a reason");
  CHECK(LeasesOf(registry, s) == std::vector<LeaseId>{a.lease});
}

TEST_CASE("A residency of one's own is a second key of the same model", "[registry]") {
  Registry registry(kGrace);
  SessionId a = registry.OpenSession("a", 1);
  SessionId b = registry.OpenSession("b", 2);
  Registry::Acquired shared = Load(registry, a, "m", false);
  ModelKey own = Key("m");
  own.placement = "sim:1,*@sim:1";
  absl::StatusOr<Registry::Acquired> second = registry.Acquire(b, own, "m", false, Bytes(0, 300));
  REQUIRE(second.ok());
  CHECK(second->must_load);  // not the shared one: its own residency
  CHECK(second->residency != shared.residency);
  REQUIRE(registry.MarkReady(second->residency).ok());
  CHECK(registry.Find(own) == second->residency);
  CHECK(registry.Find(Key("m")) == shared.residency);
  CHECK(own.ToString() == "m|dtype=keep|sim:1,*@sim:1");
  CHECK(Key("m").ToString() == "m|dtype=keep");

  Load(registry, a, "other", false);
  std::vector<std::pair<ResidencyId, ModelKey>> same = registry.FindSameModel(own);
  REQUIRE(same.size() == 2);  // "other" is another model
  CHECK(same[0].first == shared.residency);
  CHECK(same[0].second == Key("m"));
  CHECK(same[1].first == second->residency);
  CHECK(same[1].second == own);
  CHECK(registry.BytesByDevice()[DeviceId::Cpu()] == 200 + 300 + 200);
}

}  // namespace
}  // namespace distorch
