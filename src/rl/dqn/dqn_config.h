// The DQN agent's configuration: the environment it acts in (env:) and the agent itself (dqn:).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/config_schema.h"
#include "rl/envs/env.h"

namespace stoch::rl {

struct EnvConfig {
  std::string name = "CartPole-v1";
  int64_t num_envs = 1;
  int64_t max_episode_steps = 0;
  double sticky_action_prob = -1.0;
  bool difficulty_ramping = true;
  bool minimal_action_set = false;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("name", name, "environment",
      Spec()
          .one_of(env_names())
          .fixed_for_evaluation("is the environment the checkpoint's network was trained on"));
    v("num_envs", num_envs, "environments stepped together (each with its own random stream)",
      Spec().at_least(1));
    v("max_episode_steps", max_episode_steps,
      "time limit (truncation); 0 keeps the reference's (CartPole 500, MountainCar 200, ...)",
      Spec().at_least(0).at_most(std::numeric_limits<int32_t>::max()));
    v("sticky_action_prob", sticky_action_prob,
      "MinAtar: chance the previous action repeats; negative keeps the reference's 0.1",
      Spec().at_most(1));
    v("difficulty_ramping", difficulty_ramping, "MinAtar: games speed up over an episode");
    v("minimal_action_set", minimal_action_set,
      "MinAtar: only the game's own actions instead of all six");
  }
  EnvOptions options() const;
  static std::vector<std::string> env_names();
};

struct DqnConfig {
  double gamma = 0.99;
  int64_t n_step = 1;
  bool double_dqn = false;
  int64_t train_every = 10;
  int64_t learning_starts = 10000;
  int64_t target_update_every = 500;
  double tau = 1.0;
  double epsilon_start = 1.0;
  double epsilon_end = 0.05;
  double exploration_fraction = 0.5;
  int64_t total_env_steps = 0;
  int64_t exploration_steps = 0;
  int64_t exploration_start = 0;
  int64_t replay_capacity = 10000;
  bool prioritized = false;
  double priority_alpha = 0.6;
  double priority_beta = 0.4;
  double epsilon_eval = 0.05;
  int64_t eval_episodes = 10;
  int64_t eval_max_steps = 100000;
  bool helper_lane = true;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    // value.support auto's bins follow it; an evaluation reads it nowhere else.
    v("gamma", gamma, "discount factor",
      Spec().at_least(0).at_most(1).fixed_for_evaluation(
          "places the checkpoint's bins (value.support auto)"));
    v("n_step", n_step, "n-step returns (1: one-step TD)", Spec().at_least(1));
    v("double_dqn", double_dqn, "pick the bootstrap action with the online network");
    v("train_every", train_every, "environment steps collected per gradient update",
      Spec().at_least(1));
    v("learning_starts", learning_starts,
      "environment steps of exploration before the first update", Spec().at_least(1));
    v("target_update_every", target_update_every,
      "environment steps between target network updates", Spec().at_least(1));
    v("tau", tau, "target update: target = tau * online + (1 - tau) * target",
      Spec().above(0).at_most(1));
    v("epsilon_start", epsilon_start, "exploration rate at the first step",
      Spec().at_least(0).at_most(1));
    v("epsilon_end", epsilon_end, "exploration rate after the decay",
      Spec().at_least(0).at_most(1));
    v("exploration_fraction", exploration_fraction,
      "share of all environment steps over which epsilon decays linearly",
      Spec().above(0).at_most(1));
    v("exploration_steps", exploration_steps,
      "environment steps over which epsilon decays; 0 uses exploration_fraction of the run",
      Spec().at_least(0));
    v("exploration_start", exploration_start,
      "environment steps at epsilon_start before the decay begins (MinAtar's reference DQN: "
      "its 5000 random steps)",
      Spec().at_least(0));
    v("total_env_steps", total_env_steps,
      "the run length the schedules are fractions of (pin it to stop and resume with another "
      "train.steps); 0: learning_starts + train.steps * train_every",
      Spec().at_least(0));
    v("replay_capacity", replay_capacity, "transitions kept in the replay buffer",
      Spec().at_least(1));
    v("prioritized", prioritized, "prioritised replay (Schaul et al. 2016) instead of uniform");
    v("priority_alpha", priority_alpha, "prioritised replay: priority exponent",
      Spec().at_least(0));
    v("priority_beta", priority_beta,
      "prioritised replay: importance-weight exponent at the start, annealed to 1",
      Spec().at_least(0).at_most(1));
    v("epsilon_eval", epsilon_eval, "exploration rate of the evaluation policy (0: greedy)",
      Spec().at_least(0).at_most(1));
    v("eval_episodes", eval_episodes, "whole episodes per evaluation", Spec().at_least(1));
    v("eval_max_steps", eval_max_steps,
      "evaluation: steps after which an episode of an environment without a time limit "
      "(MinAtar) is cut short and counted as truncated (eval/truncated); 0: never",
      Spec().at_least(0));
    v("helper_lane", helper_lane,
      "CPU with run.threads >= 2: a second thread computes the bootstrap target, weight "
      "gradients and half the optimiser update beside the main one (each gets half the "
      "intra-op threads); results are identical",
      Spec().changes_no_result());
  }
};

}  // namespace stoch::rl
