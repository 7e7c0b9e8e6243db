#include "train/dqn_task.h"

#include <torch/torch.h>

#include <cmath>

#include "core/errors.h"
#include "core/registry.h"
#include "core/strings.h"
#include "models/value_net_size.h"
#include "rl/vector_env.h"
#include "train/experiment.h"

namespace stoch::train {

DqnTask::DqnTask(const ExperimentConfig& cfg, const torch::Device& device) {
  if (cfg.train.grad_accum != 1)
    throw InputError("train.grad_accum: dqn takes one batch per update; expected 1");
  const auto& s = cfg.task_sections<DqnSections>();
  dqn_ = s.dqn;
  eval_ = {s.env, static_cast<uint64_t>(cfg.run.seed), s.dqn.eval_episodes, s.dqn.epsilon_eval,
           s.dqn.eval_max_steps};
  agent_ = std::make_unique<rl::DqnAgent>(
      rl::DqnAgent::Options{s.dqn, s.env, s.model, s.value, static_cast<uint64_t>(cfg.run.seed),
                            cfg.train.batch_size, cfg.train.steps},
      device);
}

Metrics DqnTask::evaluate(int64_t step) {
  Metrics m = rl::evaluate_policy(eval_, step,
                                  [&](const float* obs) { return agent_->greedy_action(obs); });
  m["eval/env_steps"] = static_cast<double>(agent_->env_steps());
  return m;
}

std::string DqnTask::summary(const Metrics& last_eval) const {
  auto it = last_eval.find("eval/return_mean");
  if (it == last_eval.end()) return "";
  return stoch::str("summary: ", eval_.env.name, " eval return ", format_number(it->second, 5),
                    " +- ", format_number(last_eval.at("eval/return_std"), 4), " over ",
                    last_eval.at("eval/episodes"), " episodes after ", agent_->env_steps(),
                    " environment steps");
}

const hooks::ValueView* DqnTask::value_view() {
  if (!view_.net) {
    view_.net = &agent_->net();
    view_.loss = &agent_->loss();
    view_.eval_inputs = agent_->probe_states();
  }
  return &view_;
}

namespace {

// Lower bounds (train/memory_estimate.h): the replay buffer as rl::ReplayBuffer allocates it at
// the start (both observations of every transition, packed to bits when the environment's are
// binary, its action, reward and flags; the priority tree's sums and minima when prioritised),
// the learner's network with gradients and Adam moments, and the target network.
MemoryEstimate estimate_dqn_memory(const ExperimentConfig& cfg, int64_t /*world_size*/) {
  const auto& s = cfg.task_sections<DqnSections>();
  const rl::VectorEnv env(s.env.name, s.env.options(), 1, 0);
  const double envs = static_cast<double>(s.env.num_envs);
  const double slots = std::floor(static_cast<double>(s.dqn.replay_capacity) / envs) * envs;
  const double obs = static_cast<double>(env.obs_size());
  const double obs_bytes = env.binary_observation() ? std::ceil(obs / 8) : 4 * obs;
  MemoryEstimate e;
  e.add("replay buffer", slots * (2 * obs_bytes + 4 + 4 + 1), "dqn.replay_capacity",
        /*on_host=*/true);
  if (s.dqn.prioritized) {
    double leaves = 1;
    while (leaves < slots) leaves *= 2;
    e.add("priority tree", 2 * 2 * leaves * 8, "dqn.replay_capacity", /*on_host=*/true);
  }
  const int64_t outputs = env.num_actions() * value::make_value_loss(s.value)->head_outputs();
  const double params = static_cast<double>(
      models::value_net_parameter_count(s.model, env.observation_shape(), outputs));
  add_training_state(e, params, 1.0, kValueNetSizeKeys);
  e.add("target network", 4 * params, kValueNetSizeKeys);
  return e;
}

const bool registered = register_task<DqnSections, DqnTask>(
    "dqn", "online value-based RL (DQN family) with any value loss as the head", "eval/return_mean",
    estimate_dqn_memory, /*language_model=*/false, /*one_process=*/true);

}  // namespace

}  // namespace stoch::train
