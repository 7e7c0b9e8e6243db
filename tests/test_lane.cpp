// The helper lane's contract: jobs run, errors come back to the caller, nothing is left running.
#include <gtest/gtest.h>

#include <atomic>
#include <stdexcept>

#include "core/torch/lane.h"

namespace stoch {
namespace {

TEST(Lane, RunsBothSidesAndReturnsWhenBothAreDone) {
  Lane lane;
  for (Lane* l : {&lane, static_cast<Lane*>(nullptr)}) {
    std::atomic<int> done{0};
    run_side_by_side(
        l, [&] { done += 1; }, [&] { done += 10; });
    EXPECT_EQ(done.load(), 11);
  }
}

TEST(Lane, ErrorsOfEitherSideReachTheCaller) {
  Lane lane;
  EXPECT_THROW(run_side_by_side(
                   &lane, [] { throw std::runtime_error("beside"); }, [] {}),
               std::runtime_error);
  std::atomic<bool> beside_finished{false};
  try {
    run_side_by_side(
        &lane, [&] { beside_finished = true; }, [] { throw std::logic_error("here"); });
    ADD_FAILURE() << "no exception";
  } catch (const std::logic_error&) {
    // The caller's error wins, and the lane's job has ended before it arrives.
    EXPECT_TRUE(beside_finished.load());
  }
  // The lane still works afterwards, with no stale error left behind.
  int n = 0;
  run_side_by_side(
      &lane, [&] { ++n; }, [] {});
  EXPECT_EQ(n, 1);
}

TEST(Lane, JoinWaitsForTheJobOnTheWayOut) {
  Lane lane;
  std::atomic<bool> finished{false};
  {
    LaneJoin join(&lane);
    lane.start([&] {
      for (volatile int i = 0; i < 1000000; ++i) {
      }
      finished = true;
    });
  }
  EXPECT_TRUE(finished.load());
}

}  // namespace
}  // namespace stoch
