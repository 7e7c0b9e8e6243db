// Acrobot-v1 with Gymnasium 1.4.0's semantics: the two-link pendulum with the "book" dynamics,
// one RK4 step of 0.2 s per action, angles wrapped to [-pi, pi], velocities clipped,
// observation {cos t1, sin t1, cos t2, sin t2, dt1, dt2}, reward -1 per step until the tip
// swings above the bar, a 500-step limit.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "rl/envs/classic_control.h"

namespace stoch::rl {

class Acrobot : public ClassicControlEnv<4> {
 public:
  static constexpr int kDefaultMaxSteps = 500;

  explicit Acrobot(const EnvOptions& options = {});

  std::vector<int64_t> observation_shape() const override { return {6}; }
  int num_actions() const override { return 3; }
  // -1 every step, 0 on the step that reaches the goal.
  RewardRange reward_range() const override { return {-1, 0}; }
  void reset() override;
  void observe(float* out) const override;
  StepResult step(int action) override;

 protected:
  bool reachable(const std::array<double, 4>& state) const override;
};

}  // namespace stoch::rl
