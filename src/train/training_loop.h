// The training loop shared by every task, as one object whose parts read top to bottom:
// set_up (devices, task, optimiser, hooks), restore (the newest checkpoint), join_ranks
// (data parallelism), then per step: train_step, judge_update, log_interval, evaluate and
// run_hook, save. trainer.cpp runs it and starts it again after a rollback.
#pragma once

#include <torch/nn/module.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/metrics.h"
#include "core/torch/checkpoint.h"
#include "core/torch/lane.h"
#include "hooks/hook.h"
#include "optim/adamw.h"
#include "train/distributed.h"
#include "train/experiment.h"
#include "train/gradient_buckets.h"
#include "train/loop_state.h"
#include "train/micro_batches.h"
#include "train/rollbacks.h"
#include "train/task.h"
#include "train/update_guard.h"
#include "train/zero.h"

namespace stoch::train {

// run()'s answer when the run rolled back: train again from the newest checkpoint.
constexpr int kRolledBack = -1;

class TrainingLoop {
 public:
  // Builds everything that can refuse the run (bad config, data, memory) before run() writes
  // anything.
  TrainingLoop(ExperimentConfig& cfg, std::string run_dir, bool resume);
  ~TrainingLoop();

  // Trains to train.steps; `on_ready` runs first (the caller creates the run directory), and
  // `on_restored` after a resume's checkpoint loaded. Returns the exit code, or kRolledBack.
  int run(const std::function<void()>& on_ready, const std::function<void()>& on_restored);
  // When run() returned kRolledBack: the step whose loss or gradient norm was not finite.
  int64_t failed_step() const { return failed_step_; }
  // A rollback's restart restores the newest checkpoint of a step before `step`, not the newest:
  // the checkpoint of the step before the failure holds the update that broke the weights.
  void restore_before(int64_t step) { restore_before_ = step; }

 private:
  using Clock = std::chrono::steady_clock;

  void set_up();
  void open_helper_lane();
  void restore();
  void join_ranks(const Metrics& data_facts);
  void open_metrics();
  // One optimiser step; an exit code when the run must stop (signal, non-finite loss,
  // rollback), nothing to go on.
  std::optional<int> train_step(MicroBatchRunner& micro_batches);
  // Decides on the step's update from its loss and gradient norm (when computed): the update
  // guard may skip it; a non-finite step stops the run or rolls it back. An exit code when the
  // run must stop.
  std::optional<int> judge_update(const torch::Tensor& step_loss, const torch::Tensor& grad_norm,
                                  bool* skipped);
  int stop_or_roll_back(const std::string& why);  // after a non-finite step
  bool weights_finite();
  std::optional<int> log_interval(double lr, const torch::Tensor& grad_norm);
  void evaluate(int64_t step);
  // grad_squares: the hook context's (hooks/hook.h), for sharded gradients.
  void run_hook(size_t i, int64_t step,
                const std::map<std::string, double>* grad_squares = nullptr);
  void save(int64_t step);
  void write_metrics(int64_t step, const std::string& split, const Metrics& m);
  void zero_grad();

  ExperimentConfig& cfg_;
  const std::string run_dir_;
  const bool resume_;
  int64_t failed_step_ = -1, restore_before_ = -1;
  bool from_checkpoint_ = false;  // a resume found a checkpoint (else it starts over)
  WorldEnv world_;
  int64_t W_ = 1;
  bool main_rank_ = true;
  c10::Device device_{c10::kCPU};
  bool bf16_ = false;
  bool sharded_ = false;

  // Declared before what uses it, so that it is destroyed after them.
  std::unique_ptr<Lane> lane_;
  int restore_threads_ = 0;  // intra-op threads to give back when the lane closes
  std::unique_ptr<Task> task_;
  torch::nn::Module* model_ = nullptr;
  std::unique_ptr<optim::AdamW> optim_;
  std::unique_ptr<ShardedAdamW> zero_;  // the optimiser of a sharded run, made once ranks join
  TensorList saved_optim_;              // restored optimiser state, loaded once the ranks join
  std::string saved_optim_dir_;         // the checkpoint it came from
  std::vector<std::unique_ptr<hooks::Hook>> hooks_;
  CheckpointStore store_;
  Rollbacks rollbacks_;
  std::optional<UpdateGuard> guard_;
  std::optional<LoopState> state_;
  std::unique_ptr<Distributed> dist_;
  std::unique_ptr<GradientBuckets> buckets_;
  std::unique_ptr<MetricsWriter> metrics_;

  int64_t units_per_step_ = 0;
  std::string rate_name_;
  double peak_flops_ = 0.0, flops_per_unit_ = 0.0;
  Metrics last_eval_;
  double recent_step_s_ = 0.0;  // a moving average, for the ETA
  Clock::time_point last_progress_;
};

}  // namespace stoch::train
