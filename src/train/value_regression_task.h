// Task "value_regression": supervised training of a value network on generated data, with the
// stress tests of "Stop Regressing" (section 5.2.3): targets that change every phase
// (non-stationary) and targets with additive noise.
#pragma once

#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "models/value_net.h"
#include "train/task.h"
#include "value/support.h"
#include "value/value_loss.h"

namespace stoch::train {

struct RegressionDataConfig {
  std::string kind = "nonstationary";
  int64_t seed = 0;
  int64_t num_inputs = 1024;
  std::vector<int64_t> input_shape = {32};
  std::vector<double> offsets = {0, 8, 16, 24, 32};
  int64_t steps_per_phase = 5000;
  double frequency = 1e5;
  int64_t target_width = 64;
  double noise = 0.0;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("kind", kind,
      "nonstationary: a new target function per phase; noisy: one phase, noise on targets",
      Spec().one_of({"nonstationary", "noisy"}));
    v("seed", seed, "seed of the inputs and target functions (the same for every run seed)",
      Spec().at_least(0));
    v("num_inputs", num_inputs, "size of the fixed input set", Spec().at_least(1));
    v("input_shape", input_shape,
      "shape of one input: [D] (mlp), [C, H, W] (cnn), [T, D] (transformer)", Spec().at_least(1));
    v("offsets", offsets, "target offset b of each phase; targets are sin(frequency * f(x)) + b");
    v("steps_per_phase", steps_per_phase,
      "optimiser steps per phase (the last phase runs to train.steps)", Spec().at_least(1));
    v("frequency", frequency, "multiplier inside the sine: large values make targets look random",
      Spec().above(0));
    v("target_width", target_width, "hidden width of the random target network f",
      Spec().at_least(1));
    v("noise", noise,
      "training targets get U(0, noise) added, fresh each draw; fit/mse compares with the mean",
      Spec().at_least(0));
  }
};

struct ValueRegressionSections : TaskSectionsOf<ValueRegressionSections> {
  models::ValueNetConfig model;
  RegressionDataConfig data;
  value::ValueLossConfig value;

  template <class V>
  void visit(V& v) {
    v.section("model", model, "the value network: torso and head");
    v.section("data", data, "generated inputs and targets");
    v.section("value", value, "value head and loss: regression or classification");
  }
};

class ValueRegressionTask : public Task {
 public:
  ValueRegressionTask(const ExperimentConfig& cfg, const torch::Device& device);

  torch::nn::Module& model() override { return *net_; }
  torch::Tensor train_loss(int64_t micro) override;
  void set_micro_batches_per_step(int64_t n) override { micros_per_step_ = n; }
  int64_t units_per_micro() const override { return batch_size_; }
  std::string rate_name() const override { return "samples_per_s"; }
  Metrics evaluate(int64_t step) override;
  std::string summary(const Metrics& last_eval) const override;
  const hooks::ValueView* value_view() override;
  void save_state(Checkpoint& ckpt) const override;
  void load_state(const Checkpoint& ckpt) override;

  int64_t phase_of_step(int64_t step) const;
  const torch::Tensor& inputs() const { return inputs_; }
  const torch::Tensor& targets() const { return targets_; }  // [phases, num_inputs], clean

 private:
  // Micro-batch `micro`'s rows and targets: a function of the micro's index alone.
  std::pair<torch::Tensor, torch::Tensor> batch(int64_t micro) const;
  // value.support running: folds the targets of every step before `step` (all ranks' micros,
  // so every rank moves its bins alike) and moves the bins.
  void advance_support(int64_t step);

  RegressionDataConfig data_;
  uint64_t run_seed_;
  int64_t batch_size_;
  int64_t micros_per_step_;  // over all ranks (set_micro_batches_per_step): the phase is a
                             // function of the step
  torch::Device device_;
  torch::Tensor inputs_;   // [N, ...input_shape]
  torch::Tensor targets_;  // [P, N]
  std::unique_ptr<value::ValueLoss> loss_;
  value::Bounds bounds_;
  std::unique_ptr<value::RunningSupport> running_;
  int64_t support_steps_ = 0;  // steps whose targets running_ has folded in
  std::mutex support_mu_;      // train.cpu_workers' workers all call advance_support
  models::ValueNet net_{nullptr};
  hooks::ValueView view_;
};

}  // namespace stoch::train
