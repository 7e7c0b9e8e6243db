// What CartPole, Acrobot and MountainCar share: N float64 state variables, a step counter
// against a time limit, a termination flag, their own random stream, exact state for tests
// (set_physics) and byte-exact save/load. Each game adds reset, observe and step.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/rng.h"
#include "rl/envs/env.h"
#include "rl/state_io.h"

namespace stoch::rl {

template <int N>
class ClassicControlEnv : public Env {
 public:
  void seed(uint64_t seed) override { rng_ = Rng(seed); }

  // Exact physical state, e.g. copied from Gymnasium's env.state; starts an episode that has
  // already run `elapsed_steps` steps.
  void set_physics(const std::vector<double>& state, int elapsed_steps = 0) {
    if (state.size() != N)
      throw std::invalid_argument(name_ + "::set_physics: expected " + std::to_string(N) +
                                  " values");
    std::copy(state.begin(), state.end(), state_.begin());
    elapsed_ = elapsed_steps;
    terminated_ = false;
  }
  std::vector<double> physics() const { return {state_.begin(), state_.end()}; }
  int elapsed_steps() const { return elapsed_; }
  int max_episode_steps() const { return max_steps_; }
  int time_limit() const override { return max_steps_; }

  std::string save_state() const override {
    StateWriter w;
    w.put(tag_).put(state_).put(elapsed_).put(static_cast<uint8_t>(terminated_)).put(rng_);
    return std::move(w).str();
  }

  // Validates everything before changing anything: a rejected state leaves the env as it was.
  void load_state(const std::string& bytes) override {
    StateReader r(bytes);
    if (r.template get<uint32_t>() != tag_) throw std::runtime_error("not a " + name_ + " state");
    const auto state = r.template get<std::array<double, N>>();
    const int elapsed = r.template get<int>();
    const auto terminated = r.template get<uint8_t>();
    if (terminated > 1) throw std::runtime_error(name_ + " state: bad termination flag");
    static_assert(sizeof(Rng) == sizeof(std::array<uint64_t, 4>), "Rng is four words");
    const auto words = r.template get<std::array<uint64_t, 4>>();
    r.expect_end();
    // A state the dynamics cannot reach may not reach them either: NaN, infinities and huge
    // values would come out as NaN observations, or hang Acrobot's angle wrapping.
    for (const double v : state)
      if (!std::isfinite(v)) throw std::runtime_error(name_ + " state: a value is not finite");
    if (!reachable(state))
      throw std::runtime_error(name_ + " state: outside the range its dynamics keep to");
    if (elapsed < 0) throw std::runtime_error(name_ + " state: a negative step count");
    if (words == std::array<uint64_t, 4>{})
      throw std::runtime_error(name_ + " state: a zero random stream");
    state_ = state;
    elapsed_ = elapsed;
    terminated_ = terminated != 0;
    std::memcpy(static_cast<void*>(&rng_), words.data(), sizeof rng_);
  }

 protected:
  // Whether a finite state lies in the range that the game's dynamics keep to.
  virtual bool reachable(const std::array<double, N>& state) const = 0;

  // tag: four bytes that reject another environment's saved state.
  ClassicControlEnv(const EnvOptions& options, int default_max_steps, uint32_t tag,
                    std::string name)
      : max_steps_(options.max_episode_steps > 0 ? options.max_episode_steps : default_max_steps),
        tag_(tag),
        name_(std::move(name)) {}

  // Starts the step counter of a new episode.
  void start_episode() {
    elapsed_ = 0;
    terminated_ = false;
  }
  // Counts a step; true when it reaches the time limit (truncation).
  bool count_step() { return ++elapsed_ >= max_steps_; }

  std::array<double, N> state_{};
  int elapsed_ = 0;
  bool terminated_ = false;  // set by games that pay differently after termination
  int max_steps_;
  Rng rng_{0};

 private:
  uint32_t tag_;
  std::string name_;
};

}  // namespace stoch::rl
