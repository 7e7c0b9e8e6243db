// E copies of one registered environment stepped together. Observations live in contiguous
// E x obs_size float arrays so a caller can wrap them as a tensor without copying. Finished
// episodes reset automatically; the final observation of each is kept so a learner can
// bootstrap through time-limit truncation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "rl/envs/env.h"

namespace stoch::rl {

// One episode that finished during the last step().
struct EpisodeEnd {
  int env = 0;
  double episode_return = 0.0;  // undiscounted sum of rewards
  int64_t length = 0;           // steps taken
  bool truncated = false;       // ended by a time limit rather than termination
};

class VectorEnv {
 public:
  // Makes `num_envs` environments from registry<EnvEntry>() (throws InputError for an unknown
  // name), seeds them (see seed()) and starts an episode in each.
  VectorEnv(const std::string& name, const EnvOptions& options, int num_envs, uint64_t seed);

  int num_envs() const { return static_cast<int>(envs_.size()); }
  const std::vector<int64_t>& observation_shape() const { return shape_; }
  int64_t obs_size() const { return obs_size_; }
  bool binary_observation() const { return binary_; }
  int num_actions() const { return num_actions_; }

  // Env i gets mix_seed(seed, i): independent streams, unlike seed + i. Takes effect at the
  // next reset.
  void seed(uint64_t seed);
  // Starts a new episode in every env and zeroes the running returns and lengths.
  void reset_all();

  // Applies actions[i] (in [0, num_actions())) to env i, resets finished envs, and returns
  // the episodes that finished (valid until the next call).
  const std::vector<EpisodeEnd>& step(const int* actions);

  // E x obs_size: the observations to act on next (after the reset for finished envs).
  const float* observations() const { return obs_.data(); }
  // E x obs_size: the observations the last step() acted on (the replay's obs_t).
  const float* acted_observations() const { return acted_obs_.data(); }
  // E x obs_size: each env's state right after the last step(), before any reset: the final
  // observation of a finished episode, otherwise the same row as observations().
  const float* next_observations() const { return next_obs_.data(); }
  // Per env, from the last step().
  const float* rewards() const { return rewards_.data(); }
  const uint8_t* terminated() const { return terminated_.data(); }
  const uint8_t* truncated() const { return truncated_.data(); }
  // Per env: return and length of the episode in progress.
  const double* running_returns() const { return returns_.data(); }
  const int64_t* running_lengths() const { return lengths_.data(); }

  Env& env(int i) { return *envs_[i]; }

  // Every env's state, the running returns and lengths and the current observations: a
  // loaded VectorEnv steps exactly as the saved one would have. Throws InputError when the
  // bytes are malformed or come from a different number or shape of envs.
  std::string save_state() const;
  void load_state(const std::string& bytes);

 private:
  float* row(std::vector<float>& a, int i) { return a.data() + i * obs_size_; }

  std::vector<std::unique_ptr<Env>> envs_;
  std::vector<int64_t> shape_;
  int64_t obs_size_ = 0;
  bool binary_ = false;
  int num_actions_ = 0;

  std::vector<float> obs_, acted_obs_, next_obs_;
  std::vector<float> rewards_;
  std::vector<uint8_t> terminated_, truncated_;
  std::vector<double> returns_;
  std::vector<int64_t> lengths_;
  std::vector<EpisodeEnd> finished_;
};

}  // namespace stoch::rl
