// Acrobot-v1 with Gymnasium 1.4.0's semantics: the two-link pendulum with the "book" dynamics,
// one RK4 step of 0.2 s per action, angles wrapped to [-pi, pi], velocities clipped,
// observation {cos t1, sin t1, cos t2, sin t2, dt1, dt2}, reward -1 per step until the tip
// swings above the bar, a 500-step limit.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "rl/envs/env.h"

namespace stoch::rl {

class Acrobot : public Env {
 public:
  static constexpr int kDefaultMaxSteps = 500;

  explicit Acrobot(const EnvOptions& options = {});

  std::vector<int64_t> observation_shape() const override { return {6}; }
  int num_actions() const override { return 3; }
  void seed(uint64_t seed) override;
  void reset() override;
  void observe(float* out) const override;
  StepResult step(int action) override;
  std::string save_state() const override;
  void load_state(const std::string& bytes) override;

  // Exact physical state {theta1, theta2, dtheta1, dtheta2}, e.g. copied from Gymnasium's
  // env.state; starts an episode that has already run `elapsed_steps` steps.
  void set_physics(const std::vector<double>& state, int elapsed_steps = 0);
  std::vector<double> physics() const { return {state_.begin(), state_.end()}; }
  int elapsed_steps() const { return elapsed_; }
  int max_episode_steps() const { return max_steps_; }

 private:
  std::array<double, 4> state_{};
  int elapsed_ = 0;
  int max_steps_;
  Rng rng_{0};
};

}  // namespace stoch::rl
