// value.support: the return bounds `auto` uses, every environment's reward-range claim, the
// running support's statistics, and moving a categorical head's bins.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "core/errors.h"
#include "core/registry.h"
#include "core/rng.h"
#include "rl/envs/env.h"
#include "value/support.h"
#include "value/value_loss.h"

namespace stoch {
namespace {

using value::Bounds;
using value::discounted_return_bounds;

TEST(ValueSupport, DiscountedReturnBoundsByHand) {
  // CartPole: 1 a step. Its 500-step limit does not shorten the reach: the targets bootstrap
  // through it, so the values are those of an endless episode (the limit's 99.34 clipped them).
  Bounds b = discounted_return_bounds(0, 1, 0.99);
  EXPECT_EQ(b.lo, 0);
  EXPECT_NEAR(b.hi, 100, 1e-9);
  // MountainCar: -1 a step; a policy that never reaches the flag is worth -100 (not -86.6).
  b = discounted_return_bounds(-1, -1, 0.99);
  EXPECT_NEAR(b.lo, -100, 1e-9);
  EXPECT_EQ(b.hi, 0);
  b = discounted_return_bounds(-2, 12, 0.9);
  EXPECT_NEAR(b.lo, -20, 1e-9);
  EXPECT_NEAR(b.hi, 120, 1e-9);
  // Without discounting, bootstrapped values have no bound.
  EXPECT_THROW(discounted_return_bounds(0, 1, 1.0), InputError);
  // A game that never pays gets a unit support rather than an empty one.
  b = discounted_return_bounds(0, 0, 0.99);
  EXPECT_EQ(b.lo, -1);
  EXPECT_EQ(b.hi, 1);
}

// Every environment's claimed per-step reward range and time limit hold over random play
// (MinAtar's sticky actions and ramping on, as in training).
TEST(ValueSupport, EveryEnvironmentPaysWithinItsRewardRange) {
  for (const auto& name : registry<rl::EnvEntry>().names()) {
    auto env = registry<rl::EnvEntry>().get(name, "env").make(rl::EnvOptions{});
    const rl::RewardRange range = env->reward_range();
    EXPECT_LE(range.lo, range.hi) << name;
    const int limit = env->time_limit();
    env->seed(7);
    env->reset();
    Rng rng(3);
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    int length = 0;
    for (int step = 0; step < 20000; ++step) {
      const auto r = env->step(static_cast<int>(rng.below(env->num_actions())));
      lo = std::min<double>(lo, r.reward);
      hi = std::max<double>(hi, r.reward);
      ++length;
      if (limit > 0) ASSERT_LE(length, limit) << name;
      if (r.terminated || r.truncated) {
        if (r.truncated) EXPECT_GT(limit, 0) << name;  // only a time limit truncates
        env->reset();
        length = 0;
      }
    }
    EXPECT_GE(lo, range.lo) << name;
    EXPECT_LE(hi, range.hi) << name;
  }
}

TEST(ValueSupport, RunningSupportFollowsTheTargets) {
  value::RunningSupport s(-10, 10, 2.0, 0.1, {-1e9, 1e9});
  EXPECT_EQ(s.bounds().lo, -10);  // no target yet: the configured bounds
  EXPECT_EQ(s.bounds().hi, 10);
  // One batch: the bias-corrected averages are that batch's mean and spread exactly.
  const std::vector<float> batch = {1, 3, 1, 3};
  s.observe(batch.data(), 4);
  EXPECT_NEAR(s.bounds().lo, 2 - 2 * 1, 1e-12);
  EXPECT_NEAR(s.bounds().hi, 2 + 2 * 1, 1e-12);
  // Many batches of N(50, 4): mean +- 2 std.
  Rng rng(5);
  std::vector<float> normal(256);
  for (int i = 0; i < 400; ++i) {
    for (auto& v : normal) v = static_cast<float>(50 + 4 * rng.normal());
    s.observe(normal.data(), static_cast<int64_t>(normal.size()));
  }
  EXPECT_NEAR(s.bounds().lo, 42, 0.5);
  EXPECT_NEAR(s.bounds().hi, 58, 0.5);
  // Constant targets keep a minimal width; NaN targets are skipped.
  value::RunningSupport c(0, 1, 3.0, 1.0, {-1e9, 1e9});
  const std::vector<float> same = {5, 5, std::nanf(""), 5};
  c.observe(same.data(), 4);
  EXPECT_NEAR(c.bounds().lo, 5 - value::RunningSupport::kMinHalfWidth, 1e-12);
  EXPECT_NEAR(c.bounds().hi, 5 + value::RunningSupport::kMinHalfWidth, 1e-12);
  // The state round-trips, and a damaged one is refused.
  value::RunningSupport copy(-10, 10, 2.0, 0.1, {-1e9, 1e9});
  copy.load(s.state(), "test");
  EXPECT_EQ(copy.bounds().lo, s.bounds().lo);
  EXPECT_EQ(copy.bounds().hi, s.bounds().hi);
  EXPECT_THROW(copy.load({1, 2}, "test"), InputError);
  EXPECT_THROW(copy.load({1, -2, 0.5}, "test"), InputError);
  EXPECT_THROW(copy.load({1, 2, 1.5}, "test"), InputError);
  EXPECT_THROW(copy.load({std::nan(""), 2, 0.5}, "test"), InputError);
  // Within outer bounds: N(50, 4) targets against [0, 55] clip the top; targets far above
  // them leave a minimal support at the top end.
  value::RunningSupport inside(0, 1, 2.0, 1.0, {0, 55});
  inside.observe(normal.data(), static_cast<int64_t>(normal.size()));
  EXPECT_GT(inside.bounds().lo, 40);
  EXPECT_EQ(inside.bounds().hi, 55);
  const std::vector<float> far = {1000, 1002};
  inside.observe(far.data(), 2);
  EXPECT_NEAR(inside.bounds().lo, 55 - 2 * value::RunningSupport::kMinHalfWidth, 1e-12);
  EXPECT_EQ(inside.bounds().hi, 55);
}

// Moving the bins makes the loss the one a fresh loss on the new bounds is: same support, same
// targets, same loss for the same logits.
TEST(ValueSupport, SetBoundsIsAFreshLossOnTheNewBounds) {
  torch::manual_seed(0);
  const auto logits = torch::randn({6, 21});
  const auto targets = torch::tensor({11.0f, 12.5f, 19.9f, 15.0f, 30.0f, -1.0f});
  for (const std::string loss : {"two_hot", "hl_gauss", "c51", "mse_on_expectation"}) {
    for (const std::string transform : {"none", "symlog"}) {
      value::ValueLossConfig cfg;
      cfg.loss = loss;
      cfg.num_bins = 21;
      cfg.v_min = -1;
      cfg.v_max = 1;
      cfg.value_transform = transform;
      auto moved = value::make_value_loss(cfg);
      moved->set_bounds(10, 20);
      cfg.v_min = 10;
      cfg.v_max = 20;
      auto fresh = value::make_value_loss(cfg);
      EXPECT_TRUE(torch::equal(moved->support(), fresh->support())) << loss << " " << transform;
      EXPECT_TRUE(torch::equal(moved->value(logits), fresh->value(logits))) << loss;
      EXPECT_TRUE(
          torch::equal(moved->per_sample(logits, targets), fresh->per_sample(logits, targets)))
          << loss << " " << transform;
    }
  }
  value::ValueLossConfig bad;
  bad.support = "sometimes";
  EXPECT_THROW(value::make_value_loss(bad), InputError);
  bad.support = "running";
  bad.support_rate = 0;
  EXPECT_THROW(value::make_value_loss(bad), InputError);
}

}  // namespace
}  // namespace stoch
