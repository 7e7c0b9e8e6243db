// CartPole-v1 with Gymnasium 1.4.0's semantics: Euler-integrated cart-pole physics in float64,
// float32 observations, reward 1 on every step including the terminating one, a 500-step limit.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "rl/envs/env.h"

namespace stoch::rl {

class CartPole : public Env {
 public:
  static constexpr int kDefaultMaxSteps = 500;

  explicit CartPole(const EnvOptions& options = {});

  std::vector<int64_t> observation_shape() const override { return {4}; }
  int num_actions() const override { return 2; }
  void seed(uint64_t seed) override;
  void reset() override;
  void observe(float* out) const override;
  StepResult step(int action) override;
  std::string save_state() const override;
  void load_state(const std::string& bytes) override;

  // Exact physical state {x, x_dot, theta, theta_dot}, e.g. copied from Gymnasium's env.state;
  // starts an episode that has already run `elapsed_steps` steps.
  void set_physics(const std::vector<double>& state, int elapsed_steps = 0);
  std::vector<double> physics() const { return {state_.begin(), state_.end()}; }
  int elapsed_steps() const { return elapsed_; }
  int max_episode_steps() const { return max_steps_; }

 private:
  std::array<double, 4> state_{};
  int elapsed_ = 0;
  // Gymnasium pays reward 0 for steps taken after termination without a reset.
  bool terminated_ = false;
  int max_steps_;
  Rng rng_{0};
};

}  // namespace stoch::rl
