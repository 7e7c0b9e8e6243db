// Where a run stands between two optimiser steps: what a checkpoint records of the loop and a
// resume restores. It is written in one place (to_json) and read in one (from_checkpoint).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>

namespace stoch::train {

struct LoopState {
  int64_t step = 0;           // optimiser steps done
  int64_t grad_accum = 1;     // micro-batches per step on each rank
  int64_t world_size = 1;     // ranks
  int64_t micro_batches = 0;  // consumed by all ranks since step 0: the data cursor
  int64_t units_seen = 0;     // tokens (or environment steps) trained on since step 0
  double elapsed_s = 0.0;     // training time over every resume, evaluation and saving excluded

  // The logging interval in progress. A checkpoint between two log lines carries it, so the
  // resumed run's next line covers the same steps as the uninterrupted run's.
  struct Interval {
    int64_t steps = 0;
    int64_t skipped = 0;  // updates the guard skipped
    double train_s = 0.0;
    // The sum of the steps' mean losses, left on the device so that no step waits for it; on
    // resume rank 0 holds the sum over all ranks (the log line sums over ranks again).
    torch::Tensor loss;
  } interval;

  // A run at step 0 with `grad_accum` micro-batches per step and rank on `world_size` ranks.
  LoopState(int64_t grad_accum, int64_t world_size, const torch::Device& device);

  int64_t micro_batches_per_step() const { return grad_accum * world_size; }

  // One finished step: `step_loss` is this rank's summed micro-batch loss, `seconds` its time.
  void finish_step(const torch::Tensor& step_loss, double seconds, int64_t units_per_step,
                   bool skipped);
  void close_interval();

  // The checkpoint's record (state.json). `interval_loss` is the open interval's loss summed
  // over all ranks, which only a collective can give.
  nlohmann::json to_json(double interval_loss) const;
  // Restores what to_json wrote, keeping grad_accum and world_size (the resumed run's, which
  // may differ). A key absent from state.json takes its step-0 meaning.
  void restore(const nlohmann::json& saved, bool holds_interval_loss);
};

}  // namespace stoch::train
