// The learning rate as a pure function of the step: nothing to save, nothing to drift on resume.
#pragma once

#include <cstdint>
#include <string>

#include "core/config_schema.h"

namespace stoch::train {

struct ScheduleConfig {
  std::string kind = "cosine";
  int64_t warmup_steps = 100;
  double min_lr_ratio = 0.1;
  int64_t decay_steps = 0;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("kind", kind, "shape after warm-up", Spec().one_of({"cosine", "linear", "constant"}));
    v("warmup_steps", warmup_steps,
      "steps of linear warm-up: step k of them (from 1) trains at k / warmup_steps x optim.lr",
      Spec().at_least(0));
    v("min_lr_ratio", min_lr_ratio,
      "learning rate from schedule.decay_steps on, as a fraction of optim.lr (nanoGPT's formula: "
      "with decay_steps = train.steps the last step trains a hair above it)",
      Spec().at_least(0).at_most(1));
    v("decay_steps", decay_steps,
      "step where decay ends, after the warm-up's last; 0 means train.steps", Spec().at_least(0));
  }
};

// Multiplier of the peak learning rate for optimiser step `step` (0-based) of `total_steps`.
double lr_multiplier(const ScheduleConfig& cfg, int64_t step, int64_t total_steps);

// Throws InputError when schedule.decay_steps is not after the warm-up (the rate would drop from
// its peak to the floor in one step).
void check_schedule(const ScheduleConfig& cfg);

}  // namespace stoch::train
