// Registry under concurrency: one loader among racing Acquires, and the fate
// of AwaitReady callers when a load succeeds, fails or loses all its leases.
#include <atomic>
#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "distorch/registry.h"

namespace distorch {
namespace {

const absl::Duration kGrace = absl::Seconds(30);
const absl::Duration kLongWait = absl::Seconds(20);  // never reached when correct

ModelKey Key(const std::string& file) { return ModelKey{file, "dtype=bf16", ""}; }

// Runs AwaitReady for `residency` on one thread per session.
class Waiters {
 public:
  Waiters(Registry& registry, ResidencyId residency, int count) : results_(count) {
    for (int i = 0; i < count; ++i) {
      threads_.emplace_back([&registry, residency, this, i] {
        results_[i] = registry.AwaitReady(residency, kLongWait);
      });
    }
    // Give the threads time to block; correctness does not depend on it.
    absl::SleepFor(absl::Milliseconds(50));
  }
  std::vector<absl::Status> Join() {
    for (std::thread& t : threads_) t.join();
    threads_.clear();
    return results_;
  }
  ~Waiters() { Join(); }

 private:
  std::vector<absl::Status> results_;
  std::vector<std::thread> threads_;
};

TEST_CASE("Concurrent Acquire of one key: exactly one loader", "[registry]") {
  constexpr int kThreads = 8;
  Registry registry(kGrace);
  for (int round = 0; round < 50; ++round) {
    CAPTURE(round);
    std::vector<SessionId> sessions;
    for (int i = 0; i < kThreads; ++i) sessions.push_back(registry.OpenSession("ComfyUI", i));
    std::vector<Registry::Acquired> got(kThreads);
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    const ModelKey key = Key("flux-" + std::to_string(round));
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        while (!go.load()) std::this_thread::yield();
        absl::StatusOr<Registry::Acquired> a =
            registry.Acquire(sessions[i], key, "flux", i % 2 == 0, {{DeviceId::Cpu(), 64}});
        if (a.ok()) got[i] = *a;
      });
    }
    go = true;
    for (std::thread& t : threads) t.join();

    int loaders = 0;
    std::set<LeaseId> leases;
    for (const Registry::Acquired& a : got) {
      loaders += a.must_load ? 1 : 0;
      leases.insert(a.lease);
      CHECK(a.residency == got[0].residency);
    }
    CHECK(loaders == 1);
    CHECK(leases.size() == kThreads);
    absl::StatusOr<ResidencySnapshot> snap = registry.GetResidency(got[0].residency);
    REQUIRE(snap.ok());
    CHECK(snap->leases.size() == kThreads);
    CHECK(registry.BytesByDevice().at(DeviceId::Cpu()) == 64u * (round + 1));
  }
}

TEST_CASE("AwaitReady waiters learn how the load ended", "[registry]") {
  constexpr int kWaiters = 4;
  Registry registry(kGrace);
  SessionId loader = registry.OpenSession("ComfyUI", 1);
  absl::StatusOr<Registry::Acquired> load = registry.Acquire(loader, Key("wan"), "wan", false, {});
  REQUIRE(load.ok());
  REQUIRE(load->must_load);
  std::vector<SessionId> others;
  for (int i = 0; i < kWaiters; ++i) {
    others.push_back(registry.OpenSession("ComfyUI", 10 + i));
    auto shared = registry.Acquire(others.back(), Key("wan"), "wan", true, {});
    REQUIRE(shared.ok());
    REQUIRE_FALSE(shared->must_load);
  }

  SECTION("ready: everyone gets OK") {
    Waiters waiters(registry, load->residency, kWaiters);
    REQUIRE(registry.MarkReady(load->residency).ok());
    for (const absl::Status& s : waiters.Join()) CHECK(s.ok());
  }

  SECTION("failed: everyone gets the failure, late callers too") {
    const absl::Status why =
        absl::DataLossError("wan.safetensors: tensor 'blocks.3.w' runs past end of file");
    Waiters waiters(registry, load->residency, kWaiters);
    registry.MarkFailed(load->residency, why);
    for (const absl::Status& s : waiters.Join()) CHECK(s == why);
    CHECK(registry.AwaitReady(load->residency, absl::ZeroDuration()) == why);
    CHECK(registry.Residencies().empty());
    for (const SessionSnapshot& s : registry.Sessions()) CHECK(s.leases.empty());
    CHECK(registry.MarkReady(load->residency).code() == absl::StatusCode::kCancelled);
  }

  SECTION("every lease went during the load: Cancelled") {
    Waiters waiters(registry, load->residency, kWaiters);
    CHECK(registry.Free(loader).empty());  // the kept shared leases remain
    for (SessionId s : others) REQUIRE(registry.SetKeepLoaded(s, load->residency, false).ok());
    std::vector<EndedResidency> ended;
    for (SessionId s : others) {
      for (EndedResidency& e : registry.Free(s)) ended.push_back(std::move(e));
    }
    REQUIRE(ended.size() == 1);
    CHECK(ended[0].was_loading);
    for (const absl::Status& s : waiters.Join()) {
      CHECK(s.code() == absl::StatusCode::kCancelled);
    }
    CHECK(registry.MarkReady(load->residency).code() == absl::StatusCode::kCancelled);
  }

  SECTION("no news within the timeout: DeadlineExceeded") {
    absl::Status s = registry.AwaitReady(load->residency, absl::Milliseconds(20));
    CHECK(s.code() == absl::StatusCode::kDeadlineExceeded);
    CHECK(std::string(s.message()) ==
          "'wan' (residency " + std::to_string(load->residency) + ") is still loading after 20ms");
  }
}

TEST_CASE("Only recent failures are remembered", "[registry]") {
  Registry registry(kGrace);
  SessionId s = registry.OpenSession("ComfyUI", 1);
  std::vector<ResidencyId> failed;
  for (int i = 0; i < 1000; ++i) {
    auto a = registry.Acquire(s, Key("m" + std::to_string(i)), "m", false, {});
    REQUIRE(a.ok());
    registry.MarkFailed(a->residency, absl::UnavailableError("disk gone"));
    failed.push_back(a->residency);
  }
  CHECK(registry.AwaitReady(failed.front(), absl::ZeroDuration()).code() ==
        absl::StatusCode::kCancelled);
  CHECK(registry.AwaitReady(failed.back(), absl::ZeroDuration()).code() ==
        absl::StatusCode::kUnavailable);
}

TEST_CASE("Mixed concurrent traffic keeps the registry consistent", "[registry]") {
  constexpr int kThreads = 6;
  Registry registry(kGrace);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&registry, t] {
      SessionId s = registry.OpenSession("ComfyUI", t);
      for (int i = 0; i < 300; ++i) {
        const std::string file = "m" + std::to_string((i * 7 + t) % 5);
        auto a =
            registry.Acquire(s, Key(file), file, (i + t) % 3 == 0, {{DeviceId::Cuda(t % 2), 1}});
        if (!a.ok()) continue;
        if (a->must_load && i % 4 != 0) {
          (void)registry.MarkReady(a->residency);
        } else if (a->must_load) {
          registry.MarkFailed(a->residency, absl::UnavailableError("injected"));
        }
        if (i % 5 == 0) (void)registry.SetKeepLoaded(s, a->residency, false);
        if (i % 3 == 0) (void)registry.Release(s, a->lease);
        if (i % 7 == 0) registry.Free(s);
        if (i % 11 == 0) (void)registry.Evict(a->residency);
        (void)registry.AwaitReady(a->residency, absl::ZeroDuration());
      }
      if (t % 2 == 0) registry.CloseSession(s, absl::UnixEpoch());
    });
  }
  for (std::thread& t : threads) t.join();
  registry.ReapExpired(absl::UnixEpoch() + kGrace);

  // Every residency has leases, every lease is listed by its session, and the
  // byte totals match the listed residencies.
  std::map<LeaseId, ResidencyId> by_residency;
  std::map<DeviceId, uint64_t> bytes;
  for (const ResidencySnapshot& r : registry.Residencies()) {
    CHECK_FALSE(r.leases.empty());
    for (const LeaseSnapshot& l : r.leases) by_residency[l.lease] = r.id;
    for (const auto& [device, n] : r.bytes_by_device) bytes[device] += n;
  }
  std::map<LeaseId, ResidencyId> by_session;
  for (const SessionSnapshot& s : registry.Sessions()) {
    CHECK(s.connected);
    for (const LeaseSnapshot& l : s.leases) by_session[l.lease] = l.residency;
  }
  CHECK(by_residency == by_session);
  CHECK(registry.BytesByDevice() == bytes);
  CHECK(registry.Sessions().size() == 1 + kThreads / 2);
}

}  // namespace
}  // namespace distorch
