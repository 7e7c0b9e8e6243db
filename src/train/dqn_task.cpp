#include "train/dqn_task.h"

#include <torch/torch.h>

#include "core/errors.h"
#include "core/registry.h"
#include "core/strings.h"
#include "train/experiment.h"

namespace stoch::train {

DqnTask::DqnTask(const ExperimentConfig& cfg, const torch::Device& device) {
  if (cfg.train.grad_accum != 1)
    throw InputError("train.grad_accum: dqn takes one batch per update; expected 1");
  const auto& s = cfg.task_sections<DqnSections>();
  dqn_ = s.dqn;
  eval_ = {s.env, static_cast<uint64_t>(cfg.run.seed), s.dqn.eval_episodes, s.dqn.epsilon_eval};
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
const bool registered = register_task<DqnSections, DqnTask>(
    "dqn", "online value-based RL (DQN family) with any value loss as the head",
    "eval/return_mean");
}  // namespace

}  // namespace stoch::train
