// CartPole-v1 with Gymnasium 1.4.0's semantics: Euler-integrated cart-pole physics in float64,
// float32 observations, reward 1 on every step including the terminating one, a 500-step limit.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "rl/envs/classic_control.h"

namespace stoch::rl {

class CartPole : public ClassicControlEnv<4> {
 public:
  static constexpr int kDefaultMaxSteps = 500;

  explicit CartPole(const EnvOptions& options = {});

  std::vector<int64_t> observation_shape() const override { return {4}; }
  int num_actions() const override { return 2; }
  // +1 a step while the pole stands (0 for a step taken after termination).
  RewardRange reward_range() const override { return {0, 1}; }
  void reset() override;
  void observe(float* out) const override;
  StepResult step(int action) override;

 protected:
  bool reachable(const std::array<double, 4>& state) const override;
};

}  // namespace stoch::rl
