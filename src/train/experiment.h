// The whole config of a run: the shared sections (run, optim, schedule, train, log) plus the
// sections of the chosen task. One tree, one declaration per key, one resolved config.yaml.
#pragma once

#include <cstdint>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/config_schema.h"
#include "hooks/hook.h"
#include "optim/adamw.h"
#include "train/dist_config.h"
#include "train/schedule.h"
#include "train/task.h"

namespace stoch::train {

struct RunConfig {
  std::string name;
  int64_t seed = 1;
  std::string device = "auto";
  std::string precision = "auto";
  int64_t threads = 0;
  std::string libtorch_kernels = "auto";
  double peak_tflops = 0;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("name", name, "run name; empty uses the config file's name", Spec().changes_no_result());
    v("seed", seed, "seed for initialisation, dropout and data order", Spec().at_least(0));
    v("device", device, "where to train: cuda when available (auto), or forced",
      Spec().one_of({"auto", "cpu", "cuda"}));
    v("precision", precision, "auto: bf16 autocast for language models on CUDA, else fp32",
      Spec().one_of({"auto", "fp32", "bf16"}));
    v("threads", threads,
      "CPU threads for LibTorch; 0 uses every CPU this process may run on (its affinity "
      "mask, capped by a cgroup CPU quota); another count rounds LibTorch's sums differently",
      Spec().at_least(0).on_resume().changes_no_result());
    v("libtorch_kernels", libtorch_kernels,
      "instruction set of LibTorch's own CPU kernels, whose softmax and sums round differently "
      "on each (ATEN_CPU_CAPABILITY); auto: LibTorch's choice, or that variable's; pin avx2 to "
      "repeat a run's bits on another x86-64 CPU",
      Spec().one_of({"auto", "default", "avx2", "avx512"}).on_resume().changes_no_result());
    v("peak_tflops", peak_tflops,
      "dense peak TFLOP/s of one rank's GPU (H100 SXM, H200: 989 bf16) or of the whole CPU, "
      "for the mfu metric; 0: no mfu",
      Spec().at_least(0).on_resume().changes_no_result());
  }
};

struct TrainConfig {
  int64_t steps = 1000;
  int64_t batch_size = 16;
  int64_t grad_accum = 1;
  double grad_clip = 1.0;
  int64_t eval_every = 100;
  int64_t eval_batches = 8;
  int64_t ckpt_every = 500;
  int64_t keep_last = 2;
  int64_t keep_every = 0;
  int64_t cpu_workers = 1;
  double allreduce_bucket_mb = 0;
  double skip_update_z = 0;
  std::string on_nonfinite = "stop";
  int64_t max_rollbacks = 3;
  double rollback_lr_factor = 0.5;
  int64_t fault_grad_spike_step = 0;
  int64_t fault_lr_spike_step = 0;
  int64_t fault_grad_inf_step = 0;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("steps", steps, "optimiser steps in the whole run", Spec().at_least(1).on_resume());
    // Bounded so that the units per step (batch x context x grad_accum x ranks) fit an int64;
    // far smaller batches are refused by the memory estimate already.
    v("batch_size", batch_size, "sequences (or samples) per micro-batch",
      Spec().at_least(1).at_most(std::numeric_limits<int32_t>::max()));
    v("grad_accum", grad_accum, "micro-batches accumulated per optimiser step",
      Spec().at_least(1).at_most(1 << 16));
    v("grad_clip", grad_clip, "clip the global gradient norm to this; 0 disables",
      Spec().at_least(0));
    v("eval_every", eval_every,
      "evaluate every this many steps (and at the end); 0 only at the end",
      Spec().at_least(0).on_resume());
    v("eval_batches", eval_batches, "held-out batches per evaluation", Spec().at_least(1));
    v("ckpt_every", ckpt_every,
      "checkpoint every this many steps (and at the end); 0 only at the end (a rollback "
      "restarts from the newest checkpoint, so this alone changes where)",
      Spec().at_least(0).on_resume().changes_no_result());
    v("keep_last", keep_last, "checkpoints kept; older ones are deleted; 0 keeps all",
      Spec().at_least(0).on_resume().changes_no_result());
    v("keep_every", keep_every,
      "checkpoints at multiples of this step are never deleted by keep_last; 0: none",
      Spec().at_least(0).on_resume().changes_no_result());
    v("cpu_workers", cpu_workers,
      "micro-batches computed at once by single-threaded workers (CPU only; needs dropout 0)",
      Spec().at_least(1));
    v("allreduce_bucket_mb", allreduce_bucket_mb,
      "data-parallel runs: gradient all-reduce bucket size in MB; 0: a quarter of the gradients, "
      "within [0.0625, 25]",
      Spec().at_least(0));
    v("skip_update_z", skip_update_z,
      "skip an optimiser step whose loss or gradient norm is this many standard deviations above "
      "the last 128 steps' (llm.c's guard; logged as `skipped`); 0: off",
      Spec().at_least(0).on_resume());
    v("on_nonfinite", on_nonfinite,
      "a non-finite loss or gradient norm, checked every step before its update: stop (exit 1), "
      "or rollback to the newest complete checkpoint before the step preceding it, with the "
      "learning rate times rollback_lr_factor",
      Spec().one_of({"stop", "rollback"}).on_resume());
    v("max_rollbacks", max_rollbacks, "rollbacks allowed in the whole run before it stops",
      Spec().at_least(0).on_resume());
    v("rollback_lr_factor", rollback_lr_factor,
      "each rollback multiplies the learning rate by this for the rest of the run",
      Spec().above(0).at_most(1).on_resume());
    v("fault_grad_spike_step", fault_grad_spike_step,
      "fault injection for tests: multiply this step's gradients by 1e6 before clipping; 0: off",
      Spec().at_least(0).on_resume());
    v("fault_lr_spike_step", fault_lr_spike_step,
      "fault injection for tests: multiply this step's learning rate by 1e30, in a run that has "
      "not rolled back yet; 0: off",
      Spec().at_least(0).on_resume());
    v("fault_grad_inf_step", fault_grad_inf_step,
      "fault injection for tests: make this step's gradients infinite, its loss staying finite; "
      "0: off",
      Spec().at_least(0).on_resume());
  }
};

struct LogConfig {
  int64_t every = 10;
  int64_t console_every = 100;
  bool tensorboard = true;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("every", every, "write a train line to metrics.jsonl every this many steps",
      Spec().at_least(1).on_resume().changes_no_result());
    v("console_every", console_every, "print a progress line to the log every this many steps",
      Spec().at_least(1).on_resume().changes_no_result());
    v("tensorboard", tensorboard, "also write metrics as TensorBoard scalars under RUN_DIR/tb/",
      Spec().on_resume().changes_no_result());
  }
};

class ExperimentConfig {
 public:
  RunConfig run;
  std::string task = "lm";
  optim::OptimConfig optim;
  ScheduleConfig schedule;
  TrainConfig train;
  LogConfig log;
  DistConfig dist;
  std::vector<hooks::HookSpec> hooks;
  std::shared_ptr<TaskSections> sections;  // the task's own sections, made from its registry entry

  template <class V>
  void visit(V& v);

  // The task's sections, cast to the task's own type.
  template <class S>
  const S& task_sections() const {
    return dynamic_cast<const S&>(*sections);
  }
};

// Parses and validates a merged config tree; throws InputError naming file:line and the key.
ExperimentConfig parse_experiment(const config::Node& root);

// Loads `path` (with its `base:` files) and applies --set overrides, in order.
config::Node load_config(const std::string& path, const std::vector<std::string>& overrides);

// The resolved config as YAML; with docs, each key carries its doc, type and range as a comment.
std::string to_yaml(ExperimentConfig& cfg, bool with_docs);

// Every declared key, and the ones that may change on resume.
config::KeyLister list_keys(ExperimentConfig& cfg);

// run.seed and the keys of every task that change no result (Spec::changes_no_result): runs that
// differ only in them are seeds of one setup, which `stoch compare` groups.
std::vector<std::string> same_setup_keys();

}  // namespace stoch::train
