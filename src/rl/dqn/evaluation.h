// The DQN evaluation protocol: whole episodes with an epsilon-greedy policy on a fresh
// environment and random stream keyed by the step, so it never touches the training
// environments or exploration stream and cannot change training.
#pragma once

#include <cstdint>
#include <functional>

#include "core/metrics.h"
#include "rl/dqn/dqn_config.h"

namespace stoch::rl {

struct EvalProtocol {
  EnvConfig env;
  uint64_t seed = 0;      // the run's
  int64_t episodes = 10;  // whole episodes
  double epsilon = 0.05;  // exploration of the evaluated policy (0: greedy)
  // Per episode, in an environment without a time limit of its own (MinAtar's): a policy that
  // never ends an episode (Seaquest's, staying at the surface) would evaluate for ever.
  int64_t max_steps = 100000;
};

// eval/return_mean, eval/return_std, eval/length_mean, eval/episodes and eval/truncated (the
// episodes max_steps cut short, their returns so far counted) of the policy whose greedy action
// for one observation is `greedy(obs)`, evaluated at training step `step`.
Metrics evaluate_policy(const EvalProtocol& protocol, int64_t step,
                        const std::function<int(const float* obs)>& greedy);

}  // namespace stoch::rl
