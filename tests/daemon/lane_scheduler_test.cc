// The loader's chunk scheduler: every item once, in order within its lane,
// and concurrent workers kept in different lanes while lanes have work.
#include "daemon/load/lane_scheduler.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

namespace distorch {
namespace {

TEST_CASE("items go out once each, in index order within a lane", "[lane_scheduler]") {
  std::vector<size_t> lanes = {0, 1, 0, 2, 1, 0, 2, 2};
  LaneScheduler s(lanes, 3);
  std::vector<std::vector<size_t>> seen(3);
  std::optional<size_t> last;
  while (auto g = s.Next(last)) {
    CHECK(lanes[g->item] == g->lane);
    seen[g->lane].push_back(g->item);
    s.Done(g->lane);
    last = g->lane;
  }
  CHECK(seen[0] == std::vector<size_t>{0, 2, 5});
  CHECK(seen[1] == std::vector<size_t>{1, 4});
  CHECK(seen[2] == std::vector<size_t>{3, 6, 7});
}

TEST_CASE("a worker keeps its lane; a second one gets another lane", "[lane_scheduler]") {
  LaneScheduler s({0, 0, 0, 1, 1, 1}, 2);
  auto a = s.Next(std::nullopt);
  REQUIRE(a.has_value());
  auto b = s.Next(std::nullopt);  // lane of `a` is busy: the other one
  REQUIRE(b.has_value());
  CHECK(a->lane != b->lane);
  s.Done(a->lane);
  auto a2 = s.Next(a->lane);  // back to its own lane while `b` still works
  REQUIRE(a2.has_value());
  CHECK(a2->lane == a->lane);
  s.Done(a2->lane);
  // Preferred lane busy (b works there): the idle lane instead.
  auto c = s.Next(b->lane);
  REQUIRE(c.has_value());
  CHECK(c->lane == a->lane);
}

TEST_CASE("more workers than lanes share the emptiest-loaded lane", "[lane_scheduler]") {
  LaneScheduler s({0, 0, 0, 0, 1}, 2);
  auto a = s.Next(std::nullopt);
  auto b = s.Next(std::nullopt);
  auto c = s.Next(std::nullopt);
  REQUIRE((a && b && c));
  CHECK(a->lane == 0);  // ties go to the lane with the most items left
  CHECK(b->lane == 1);
  CHECK(c->lane == 0);  // both busy: lane 0 still has items, lane 1 none
}

TEST_CASE("under threads every item goes out exactly once", "[lane_scheduler]") {
  constexpr size_t kLanes = 3, kItems = 30000;
  std::vector<size_t> lanes;
  for (size_t i = 0; i < kItems; ++i) lanes.push_back((i * 7) % kLanes);
  LaneScheduler s(lanes, kLanes);
  std::vector<std::atomic<int>> taken(kItems);
  auto worker = [&] {
    std::optional<size_t> last;
    while (auto g = s.Next(last)) {
      taken[g->item].fetch_add(1);
      s.Done(g->lane);
      last = g->lane;
    }
  };
  std::vector<std::thread> pool;
  for (int i = 0; i < 4; ++i) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  size_t once = 0;
  for (auto& t : taken) once += (t.load() == 1);
  CHECK(once == kItems);
  CHECK_FALSE(s.Next(std::nullopt).has_value());
}

}  // namespace
}  // namespace distorch
