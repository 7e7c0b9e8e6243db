// What a task plugs into the shared training loop. The loop never knows whether it trains a
// language model or a value network; it asks the task for losses, evaluations and extra state.
#pragma once

#include <torch/nn/module.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/config_schema.h"
#include "core/metrics.h"
#include "core/registry.h"
#include "core/torch/checkpoint.h"
#include "hooks/hook.h"
#include "train/memory_estimate.h"

namespace stoch {
class Lane;
}

namespace stoch::train {

class ExperimentConfig;
class Task {
 public:
  virtual ~Task() = default;

  // The module whose parameters are trained, checkpointed and evaluated.
  virtual torch::nn::Module& model() = 0;

  // Loss of micro-batch number `micro` (counted over the whole run): a pure function of it
  // and the task's construction, so a resumed run sees exactly the data it would have seen.
  virtual torch::Tensor train_loss(int64_t micro) = 0;

  // The micro-batches of one optimiser step over every rank, told before the first train_loss
  // (and again after a rollback's restart): grad_accum x world size, or, after a resume on
  // another number of ranks, the run's own count that the checkpoint holds. A task whose data
  // depends on the step reads the step from the micro-batch number with it.
  virtual void set_micro_batches_per_step(int64_t n) {}

  // Units (tokens, samples) one micro-batch trains on, and the name of their rate metric.
  virtual int64_t units_per_micro() const = 0;
  virtual std::string rate_name() const { return "tokens_per_s"; }
  // Model FLOPs of one unit in a training step (forward and backward), for the mfu metric;
  // 0 when the task does not count them.
  virtual double flops_per_unit() const { return 0.0; }

  // A second thread for independent work within a step (core/torch/lane.h): small networks on
  // a few cores gain from it. When the task asks and the run is on a CPU with at least two
  // intra-op threads, the trainer makes one, halves the threads, and hands it to the task
  // (use_lane) and the optimiser; it outlives the task's use of it.
  virtual bool wants_helper_lane() const { return false; }
  virtual void use_lane(Lane* lane) {}

  // Held-out evaluation after `step` optimiser steps, under no-grad, in eval mode; keys like
  // "val/loss". Must leave the model in eval mode or restore it; the loop sets train mode after.
  virtual Metrics evaluate(int64_t step) = 0;

  // Extra values for the train line of metrics.jsonl, since the last call ("train/return").
  virtual Metrics train_metrics() { return {}; }

  // Facts about the data logged once at the start ("data/entropy_rate").
  virtual Metrics data_facts() { return {}; }

  // A few lines for the end of a run, given the last evaluation.
  virtual std::string summary(const Metrics& last_eval) const { return ""; }

  // What language-model hooks may look at; null for other tasks.
  virtual const hooks::LmView* lm_view() { return nullptr; }
  // What value-network hooks may look at; null for other tasks.
  virtual const hooks::ValueView* value_view() { return nullptr; }

  // The run starts at step 0, not from a checkpoint: where a task sets initial weights from
  // elsewhere (model.init_from). A fresh run calls it before its run directory is made.
  virtual void start_fresh() {}

  // Extra state for checkpoints (none for stateless tasks).
  virtual void save_state(Checkpoint& ckpt) const {}
  virtual void load_state(const Checkpoint& ckpt) {}
  // What `stoch eval` restores: the state evaluation reads (a running support's bins), not what
  // only training goes on from (a replay buffer, environments part way through episodes), so an
  // evaluation's --set may change what those were made with.
  virtual void load_evaluation_state(const Checkpoint& ckpt) { load_state(ckpt); }
};

// A task's own config sections (model, data, ...), visited like every other config struct.
using TaskSections = config::Visitable;
template <class Derived>
using TaskSectionsOf = config::VisitableOf<Derived>;

struct TaskEntry {
  std::string doc;
  std::function<std::shared_ptr<TaskSections>()> make_sections;
  std::function<std::unique_ptr<Task>(const ExperimentConfig&, const torch::Device&)> make;
  // One rank's memory from the config alone (train/memory_estimate.h), checked before make();
  // empty: not estimated. `world_size` ranks share the optimiser state when it is sharded.
  std::function<MemoryEstimate(const ExperimentConfig&, int64_t world_size)> estimate_memory;
  // The metric its summary line reports, what `stoch compare` compares by default.
  std::string primary_metric;
  // It trains an LmTask (a language model of any model.arch on a token source): sample,
  // speculate and export read its runs.
  bool language_model = false;
  // It trains in one process only: its data is not a pure function of the micro-batch number
  // (acting in environments), so ranks cannot split a step's micro-batches between them. A
  // data-parallel task has rank r compute micro-batches (step * world_size + r) * grad_accum + j.
  bool one_process = false;
};

// Registers task class T, built from (config, device), whose own config sections are Sections:
//   const bool registered = register_task<DqnSections, DqnTask>("dqn", "...", "eval/return_mean");
template <class Sections, class T>
bool register_task(const std::string& name, std::string doc, std::string primary_metric,
                   decltype(TaskEntry::estimate_memory) estimate_memory = {},
                   bool language_model = false, bool one_process = false) {
  return registry<TaskEntry>().add(
      name,
      TaskEntry{
          std::move(doc), [] { return std::make_shared<Sections>(); },
          [](const ExperimentConfig& cfg, const torch::Device& device) -> std::unique_ptr<Task> {
            return std::make_unique<T>(cfg, device);
          },
          std::move(estimate_memory), std::move(primary_metric), language_model, one_process});
}

}  // namespace stoch::train
