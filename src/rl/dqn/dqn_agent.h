// The DQN-family agent: an online Q-network and its target, epsilon-greedy acting on a vector
// of environments into a replay buffer (uniform or prioritised, n-step), target sync (hard or
// Polyak), and the learner's loss with any value loss as the head: mse/huber regress Q,
// two_hot/hl_gauss classify the bootstrapped target, c51 learns the return distribution.
// train/dqn_task.h adapts it to the trainer: one update_loss() per optimiser step.
#pragma once

#include <cmath>
#include <memory>
#include <vector>

#include "core/metrics.h"
#include "core/rng.h"
#include "core/torch/checkpoint.h"
#include "models/value_net.h"
#include "rl/dqn/dqn_config.h"
#include "rl/replay_buffer.h"
#include "rl/vector_env.h"
#include "value/support.h"
#include "value/value_loss.h"

namespace stoch::rl {

class DqnAgent {
 public:
  struct Options {
    DqnConfig dqn;
    EnvConfig env;
    models::ValueNetConfig model;
    value::ValueLossConfig value;
    uint64_t seed = 0;
    int64_t batch_size = 32;
    int64_t total_updates = 0;  // gradient updates in the run (train.steps)
  };
  DqnAgent(const Options& options, const torch::Device& device);

  // Collects dqn.train_every environment steps (after learning_starts of exploration),
  // syncs the target network when due, samples a batch and returns its loss, to be
  // back-propagated into net() by the caller.
  torch::Tensor update_loss();

  // A helper lane for the bootstrap target (beside the online forward) and the online
  // network's backward; null: none. The values are the same either way.
  void use_lane(Lane* lane);

  models::ValueNetImpl& net() { return *net_; }
  const value::ValueLoss& loss() const { return *loss_; }
  // Q-values [B, A] of observations [B, ...shape] (no gradient).
  torch::Tensor q_values(models::ValueNetImpl& net, const torch::Tensor& obs);
  // The online network's greedy action for one observation (obs_size floats): the argmax of
  // its Q-values, computed without operators where greedy_on_host can.
  int greedy_action(const float* obs);
  double epsilon_at(int64_t env_steps) const;
  // ... as it was when the schedules spanned `schedule_steps` environment steps.
  double epsilon_at(int64_t env_steps, double schedule_steps) const;
  // Length of the run in environment steps, as the schedules see it.
  double schedule_env_steps() const;
  int64_t env_steps() const { return env_steps_; }
  // States a uniformly random policy visits: fixed inputs for the value-network hooks.
  const torch::Tensor& probe_states() const { return probe_states_; }

  // Episodes and bootstrap targets since the last call, and the counters.
  Metrics train_metrics();
  Metrics data_facts() const;

  // Into / from a checkpoint: the target network ("target") and the agent ("agent": replay,
  // environments, exploration stream, counters, the open interval's statistics).
  void save_state(Checkpoint& ckpt) const;
  // `training` false restores only what an evaluation reads (the counters and a running
  // support's bins): a replay buffer or environments made with other settings are not loaded.
  void load_state(const Checkpoint& ckpt, bool training = true);

 private:
  torch::Tensor heads(models::ValueNetImpl& net, const torch::Tensor& obs);  // [B, A, m]
  // The online network's greedy action for one observation without operators (scalar heads
  // on the CPU, fused networks); false when the caller must use q_values.
  bool greedy_on_host(const float* obs, int& action);
  void collect(int64_t env_steps);
  void sync_target(double tau);
  torch::Tensor obs_tensor(const float* data, int64_t rows) const;
  void record_targets(const torch::Tensor& y);
  // Moves the categorical head's bins (value.support: running).
  void apply_support(const value::Bounds& b);

  DqnConfig dqn_;
  EnvConfig env_cfg_;
  uint64_t seed_;
  int64_t batch_size_, total_updates_;
  torch::Device device_;
  std::unique_ptr<VectorEnv> envs_;
  std::unique_ptr<ReplayBuffer> replay_;
  std::unique_ptr<ReplaySampleArrays> batch_;
  std::unique_ptr<value::ValueLoss> loss_;
  models::ValueNet net_{nullptr}, target_{nullptr};
  int64_t num_actions_ = 0, head_outputs_ = 0;
  bool distributional_ = false;
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
  std::unique_ptr<value::RunningSupport> running_;  // value.support: running, categorical heads
  std::vector<int> actions_;
  std::vector<float> q_row_;  // greedy_on_host's outputs
  torch::Tensor probe_states_;
  Lane* lane_ = nullptr;
};

}  // namespace stoch::rl
