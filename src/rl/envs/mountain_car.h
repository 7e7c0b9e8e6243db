// MountainCar-v0 with Gymnasium 1.4.0's semantics: an under-powered car in a valley, velocity
// clipped to +-0.07, an inelastic wall at the left edge, reward -1 per step, the episode ends
// when the car reaches position 0.5 moving right, a 200-step limit.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "rl/envs/classic_control.h"

namespace stoch::rl {

class MountainCar : public ClassicControlEnv<2> {
 public:
  static constexpr int kDefaultMaxSteps = 200;

  explicit MountainCar(const EnvOptions& options = {});

  std::vector<int64_t> observation_shape() const override { return {2}; }
  int num_actions() const override { return 3; }
  // -1 every step until the flag.
  RewardRange reward_range() const override { return {-1, -1}; }
  void reset() override;
  void observe(float* out) const override;
  StepResult step(int action) override;

 protected:
  bool reachable(const std::array<double, 2>& state) const override;
};

}  // namespace stoch::rl
