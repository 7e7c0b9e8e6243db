// Task "dqn": online value-based reinforcement learning on stoch's C++ environments, with any
// value loss as the head. The agent is rl/dqn/dqn_agent.h; this adapter gives the trainer one
// gradient update per step (between updates the agent collects dqn.train_every environment
// steps), the evaluation protocol (rl/dqn/evaluation.h), and the hooks' view of the Q-network.
#pragma once

#include <memory>
#include <string>

#include "models/value_net.h"
#include "rl/dqn/dqn_agent.h"
#include "rl/dqn/dqn_config.h"
#include "rl/dqn/evaluation.h"
#include "train/task.h"
#include "value/value_loss.h"

namespace stoch::train {

struct DqnSections : TaskSectionsOf<DqnSections> {
  models::ValueNetConfig model;
  rl::EnvConfig env;
  rl::DqnConfig dqn;
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

  torch::nn::Module& model() override { return agent_->net(); }
  torch::Tensor train_loss(int64_t micro) override { return agent_->update_loss(); }
  int64_t units_per_micro() const override { return dqn_.train_every; }
  std::string rate_name() const override { return "steps_per_s"; }
  Metrics evaluate(int64_t step) override;
  Metrics train_metrics() override { return agent_->train_metrics(); }
  Metrics data_facts() override { return agent_->data_facts(); }
  std::string summary(const Metrics& last_eval) const override;
  const hooks::ValueView* value_view() override;
  void save_state(Checkpoint& ckpt) const override { agent_->save_state(ckpt); }
  void load_state(const Checkpoint& ckpt) override { agent_->load_state(ckpt); }
  void load_evaluation_state(const Checkpoint& ckpt) override {
    agent_->load_state(ckpt, /*training=*/false);
  }

  bool wants_helper_lane() const override { return dqn_.helper_lane; }
  void use_lane(Lane* lane) override { agent_->use_lane(lane); }

  rl::DqnAgent& agent() { return *agent_; }

 private:
  rl::DqnConfig dqn_;
  rl::EvalProtocol eval_;
  std::unique_ptr<rl::DqnAgent> agent_;
  hooks::ValueView view_;
};

}  // namespace stoch::train
