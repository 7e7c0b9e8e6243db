// Task "dqn": online value-based reinforcement learning (DQN with target network, double-DQN,
// n-step returns, prioritised replay) on stoch's C++ environments, with any value loss as the
// head: mse/huber regress Q, two_hot/hl_gauss classify the bootstrapped target, c51 learns the
// return distribution. One trainer step is one gradient update; between updates the agent
// collects dqn.train_every environment steps.
#pragma once

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "models/value_net.h"
#include "rl/envs/env.h"
#include "rl/replay_buffer.h"
#include "rl/vector_env.h"
#include "train/task.h"
#include "value/value_loss.h"

namespace stoch::train {

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
    v("name", name, "environment", Spec().one_of(env_names()));
    v("num_envs", num_envs, "environments stepped together (each with its own random stream)",
      Spec().at_least(1));
    v("max_episode_steps", max_episode_steps,
      "time limit (truncation); 0 keeps the reference's (CartPole 500, MountainCar 200, ...)",
      Spec().at_least(0));
    v("sticky_action_prob", sticky_action_prob,
      "MinAtar: chance the previous action repeats; negative keeps the reference's 0.1",
      Spec().at_most(1));
    v("difficulty_ramping", difficulty_ramping, "MinAtar: games speed up over an episode");
    v("minimal_action_set", minimal_action_set,
      "MinAtar: only the game's own actions instead of all six");
  }
  rl::EnvOptions options() const;
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
  int64_t replay_capacity = 10000;
  bool prioritized = false;
  double priority_alpha = 0.6;
  double priority_beta = 0.4;
  double epsilon_eval = 0.05;
  int64_t eval_episodes = 10;
  bool helper_lane = true;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("gamma", gamma, "discount factor", Spec().at_least(0).at_most(1));
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
    v("helper_lane", helper_lane,
      "CPU with run.threads >= 2: a second thread computes the bootstrap target, weight "
      "gradients and half the optimiser update beside the main one (each gets half the "
      "intra-op threads); results are identical");
  }
};

struct DqnSections : TaskSectionsOf<DqnSections> {
  models::ValueNetConfig model;
  EnvConfig env;
  DqnConfig dqn;
  value::ValueLossConfig value;

  template <class V>
  void visit(V& v) {
    v.section("model", model, "the Q-network: torso, then one head per action");
    v.section("env", env, "the environment (stoch's C++ implementations)");
    v.section("dqn", dqn, "the agent: replay, targets, exploration, evaluation");
    v.section("value", value, "value head and loss: regression or classification");
  }
};

class DqnTask : public Task {
 public:
  DqnTask(const ExperimentConfig& cfg, const torch::Device& device);
  ~DqnTask() override;

  torch::nn::Module& model() override { return *net_; }
  torch::Tensor train_loss(int64_t micro) override;
  int64_t units_per_micro() const override { return dqn_.train_every; }
  std::string rate_name() const override { return "steps_per_s"; }
  Metrics evaluate(int64_t step) override;
  Metrics train_metrics() override;
  Metrics data_facts() override;
  std::string summary(const Metrics& last_eval) const override;
  const hooks::ValueView* value_view() override;
  void save_state(Checkpoint& ckpt) const override;
  void load_state(const Checkpoint& ckpt) override;

  // Q-values [B, A] of observations [B, ...shape] (no gradient).
  torch::Tensor q_values(models::ValueNetImpl& net, const torch::Tensor& obs);
  // The online network's greedy action for one observation (obs_size floats): the argmax of
  // its Q-values, computed without operators where greedy_on_host can.
  int greedy_action(const float* obs);
  double epsilon_at(int64_t env_steps) const;
  // Length of the run in environment steps, as the schedules see it.
  double schedule_env_steps() const;
  int64_t env_steps() const { return env_steps_; }

 private:
  torch::Tensor heads(models::ValueNetImpl& net, const torch::Tensor& obs);  // [B, A, m]
  // The online network's greedy action for one observation without operators (scalar heads
  // on the CPU, fused networks); false when the caller must use q_values.
  bool greedy_on_host(const float* obs, int& action);
  std::vector<float> q_row_;  // greedy_on_host's outputs
  void collect(int64_t env_steps);
  void sync_target(double tau);
  torch::Tensor obs_tensor(const float* data, int64_t rows) const;
  void record_targets(const torch::Tensor& y);

  DqnConfig dqn_;
  EnvConfig env_cfg_;
  uint64_t seed_;
  int64_t batch_size_, total_updates_;
  torch::Device device_;
  std::unique_ptr<rl::VectorEnv> envs_;
  std::unique_ptr<rl::ReplayBuffer> replay_;
  std::unique_ptr<rl::ReplaySampleArrays> batch_;
  std::unique_ptr<value::ValueLoss> loss_;
  models::ValueNet net_{nullptr}, target_{nullptr};
  int64_t num_actions_ = 0, head_outputs_ = 0;
  bool c51_ = false;
  std::vector<int64_t> obs_shape_;
  Rng rng_;  // exploration and replay sampling
  int64_t env_steps_ = 0, episodes_ = 0, last_target_sync_ = 0;
  std::vector<double> pending_returns_, pending_lengths_;  // episodes since train_metrics()
  // Scalar bootstrap targets since train_metrics() (value/target_*): whether they fit the
  // categorical support is what decides if a categorical head can resolve them.
  struct TargetStats {
    double lo = HUGE_VAL, hi = -HUGE_VAL, outside = 0, seen = 0;
  } targets_;
  double v_min_ = 0, v_max_ = 0;  // the categorical support's ends, in return units
  std::vector<int> actions_;
  torch::Tensor eval_inputs_;
  hooks::ValueView view_;
  int restore_threads_ = 0;  // intra-op threads to give back when the helper lane closes
};

}  // namespace stoch::train
