// Broker::Release and Broker::Evict in-process on a sim device: what a
// released lease reports and whom an eviction tells.
#include <algorithm>
#include <catch2/catch.hpp>
#include <string>
#include <utility>
#include <vector>

#include "daemon/broker.h"
#include "daemon/rpc/proto_convert.h"
#include "tests/daemon/model_files.h"
#include "tests/daemon/sim_broker.h"

namespace distorch {
namespace {

using testing::MakeSimBroker;

using testing::TempDir;

std::string SmallModel(const TempDir& dir) {
  const std::string path = dir.File("m.safetensors");
  testing::WriteFile(path, testing::SafetensorsBytes({
                               {"blocks.0.weight", "F32", {2, 2}, testing::PatternBytes(16, 1)},
                           }));
  return path;
}

LoadOutcome Load(Broker& broker, SessionId session, const std::string& path) {
  LoadArgs args;
  args.session = session;
  args.file_ticket = broker.tickets().PutFile(testing::OpenRead(path));
  args.name = "m.safetensors";
  args.allocation = "sim:0,*";
  absl::StatusOr<LoadOutcome> loaded = broker.Load(args, nullptr);
  REQUIRE(loaded.ok());
  return *std::move(loaded);
}

TEST_CASE("Broker::Evict tells each session once, however many leases it held", "[broker][evict]") {
  TempDir dir;
  const std::string path = SmallModel(dir);
  std::unique_ptr<Broker> broker = MakeSimBroker();
  std::vector<std::pair<SessionId, ResidencyId>> events;
  broker->SetEvictionListener([&](SessionId s, ResidencyId m, const std::string& name) {
    CHECK(name == "m.safetensors");
    events.emplace_back(s, m);
  });
  const SessionId a = broker->OpenSession("a", 1);
  const SessionId b = broker->OpenSession("b", 2);
  const LoadOutcome first = Load(*broker, a, path);
  const LoadOutcome second = Load(*broker, a, path);  // a second lease, same session
  REQUIRE(second.shared);
  REQUIRE(second.lease != first.lease);
  Load(*broker, b, path);

  absl::StatusOr<std::vector<EndedResidency>> evicted = broker->Evict(first.model, "");
  REQUIRE(evicted.ok());
  REQUIRE(evicted->size() == 1);
  std::sort(events.begin(), events.end());
  CHECK(events ==
        std::vector<std::pair<SessionId, ResidencyId>>{{a, first.model}, {b, first.model}});
  broker->SetEvictionListener(nullptr);
}

TEST_CASE("Broker::Release names the model, destroyed only with its last lease",
          "[broker][release]") {
  TempDir dir;
  const std::string path = SmallModel(dir);
  std::unique_ptr<Broker> broker = MakeSimBroker();
  const SessionId a = broker->OpenSession("a", 1);
  const SessionId b = broker->OpenSession("b", 2);
  const LoadOutcome in_a = Load(*broker, a, path);
  const LoadOutcome in_b = Load(*broker, b, path);

  absl::StatusOr<FreeOutcome> first = broker->Release(a, in_a.lease);
  REQUIRE(first.ok());
  CHECK(first->ended.empty());
  v1::ReleaseReply reply;
  ToProto(*first, &reply);
  REQUIRE(reply.has_model());  // still resident for b: named, not destroyed
  CHECK(reply.model().model_id() == in_a.model);
  CHECK(reply.model().name() == "m.safetensors");
  CHECK_FALSE(reply.model().destroyed());

  absl::StatusOr<FreeOutcome> last = broker->Release(b, in_b.lease);
  REQUIRE(last.ok());
  REQUIRE(last->ended.size() == 1);
  v1::ReleaseReply last_reply;
  ToProto(*last, &last_reply);
  CHECK(last_reply.model().model_id() == in_a.model);
  CHECK(last_reply.model().destroyed());

  absl::StatusOr<FreeOutcome> again = broker->Release(b, in_b.lease);
  CHECK(again.status().code() == absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace distorch
