// MountainCar-v0 with Gymnasium 1.4.0's semantics: an under-powered car in a valley, velocity
// clipped to +-0.07, an inelastic wall at the left edge, reward -1 per step, the episode ends
// when the car reaches position 0.5 moving right, a 200-step limit.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "rl/envs/env.h"

namespace stoch::rl {

class MountainCar : public Env {
 public:
  static constexpr int kDefaultMaxSteps = 200;

  explicit MountainCar(const EnvOptions& options = {});

  std::vector<int64_t> observation_shape() const override { return {2}; }
  int num_actions() const override { return 3; }
  void seed(uint64_t seed) override;
  void reset() override;
  void observe(float* out) const override;
  StepResult step(int action) override;
  std::string save_state() const override;
  void load_state(const std::string& bytes) override;

  // Exact physical state {position, velocity}, e.g. copied from Gymnasium's env.state; starts an
  // episode that has already run `elapsed_steps` steps.
  void set_physics(const std::vector<double>& state, int elapsed_steps = 0);
  std::vector<double> physics() const { return {state_.begin(), state_.end()}; }
  int elapsed_steps() const { return elapsed_; }
  int max_episode_steps() const { return max_steps_; }

 private:
  std::array<double, 2> state_{};
  int elapsed_ = 0;
  int max_steps_;
  Rng rng_{0};
};

}  // namespace stoch::rl
