// One reinforcement-learning environment: discrete actions, a fixed-shape float observation,
// Gymnasium's step contract (reward, terminated, truncated). No LibTorch here: environments
// live in the plain library and step millions of times per second.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/registry.h"

namespace stoch::rl {

// The least and the most that one step can pay.
struct RewardRange {
  double lo = 0, hi = 0;
};

struct StepResult {
  float reward = 0.0f;
  bool terminated = false;  // the MDP ended: do not bootstrap
  bool truncated = false;   // a time limit cut the episode: bootstrap through it
};

// Options every environment understands; games ignore the ones that do not apply.
struct EnvOptions {
  int max_episode_steps = 0;  // 0: the reference default (CartPole 500, MountainCar 200, ...)
  float sticky_action_prob =
      -1;  // < 0: the reference default (MinAtar 0.1; none for classic control)
  bool difficulty_ramping = true;   // MinAtar
  bool minimal_action_set = false;  // MinAtar: the game's own actions instead of all six
};

class Env {
 public:
  virtual ~Env() = default;

  // Shape of one observation, e.g. {4} for CartPole or {C, 10, 10} for MinAtar (channels first).
  virtual std::vector<int64_t> observation_shape() const = 0;
  // True when every observation entry is 0 or 1 (MinAtar): replay stores them as bits.
  virtual bool binary_observation() const { return false; }
  virtual int num_actions() const = 0;
  // Bounds of one step's reward, from the game's rules (value.support: auto sizes the value
  // head's support from them).
  virtual RewardRange reward_range() const = 0;
  // The time limit in steps (truncation); 0 when episodes have none.
  virtual int time_limit() const = 0;

  // Re-seeds the environment's own random stream; the next reset() draws from it.
  virtual void seed(uint64_t seed) = 0;
  // Starts a new episode.
  virtual void reset() = 0;
  // Writes the current observation (product of observation_shape() floats) to out.
  virtual void observe(float* out) const = 0;
  // Applies an action in [0, num_actions()). After terminated or truncated, call reset().
  virtual StepResult step(int action) = 0;

  // The complete state (dynamics, counters and random stream) as bytes, for exact resume.
  virtual std::string save_state() const = 0;
  // Restores save_state()'s bytes; throws std::runtime_error on malformed input.
  virtual void load_state(const std::string& bytes) = 0;
};

struct EnvEntry {
  std::string doc;
  std::function<std::unique_ptr<Env>(const EnvOptions&)> make;
};

// Registers environment class E (constructed from EnvOptions) under `name`:
//   const bool registered = register_env<CartPole>("CartPole-v1", "...");
template <class E>
bool register_env(const std::string& name, std::string doc) {
  return registry<EnvEntry>().add(
      name, EnvEntry{std::move(doc), [](const EnvOptions& o) -> std::unique_ptr<Env> {
                       return std::make_unique<E>(o);
                     }});
}

}  // namespace stoch::rl
