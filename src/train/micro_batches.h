// Runs the micro-batches of one optimiser step and leaves their gradient in the parameters.
// With workers > 1, that many micro-batches run at once on single-threaded workers: on a few CPU
// cores, small models scale better across independent micro-batches than inside each kernel.
// Each worker's gradient is kept apart and the sum is taken in micro-batch order, so the result
// is deterministic (and resume exact) for a given worker count.
// In a data-parallel run, rank r of W computes micro-batches (step * W + r) * accum + j, so W
// ranks with grad_accum A see exactly the data one process with grad_accum A * W sees, and the
// step's gradient is summed over the ranks before run() returns (or, with gradient sharding,
// left for train/zero.h to reduce-scatter).
// With STOCH_TRACE_MICRO_BATCHES=FILE, every rank appends "rank R step S micro M..." per step
// to FILE: which data a run saw, for checks across resumes and changes of world size.
#pragma once

#include <torch/nn/module.h>

#include <vector>

#include "train/task.h"

namespace stoch::train {

class GradientBuckets;

// This process's share of every step; the default is the whole of it.
struct DataShard {
  int64_t rank = 0;
  int64_t world_size = 1;
  GradientBuckets* buckets = nullptr;  // sums gradients over the ranks; null with one rank
  // The data cursor: micro-batch `first_micro` opens step `first_step`. A resume at another
  // world size continues the global sequence of micro-batches where the checkpoint left it.
  int64_t first_step = 0;
  int64_t first_micro = 0;
};

class MicroBatchRunner {
 public:
  MicroBatchRunner(Task& task, int64_t accum, int64_t workers, bool bf16,
                   const torch::Device& device, DataShard shard = {});

  // Computes this rank's micro-batches of the step (all of step * accum .. step * accum +
  // accum - 1 with one rank); each loss is divided by accum * world_size before its gradient is
  // taken, so the sum over ranks is the mean over the step. Returns the sum of this rank's
  // (undivided) losses, detached.
  torch::Tensor run(int64_t step);
  ~MicroBatchRunner();

 private:
  torch::Tensor run_sequential(int64_t step);
  torch::Tensor run_parallel(int64_t step);
  int64_t micro(int64_t step, int64_t a) const {
    return shard_.first_micro +
           ((step - shard_.first_step) * shard_.world_size + shard_.rank) * accum_ + a;
  }

  Task& task_;
  int64_t accum_, workers_;
  bool bf16_;
  torch::Device device_;
  DataShard shard_;
  double divisor_;  // micro-batches per step over all ranks
  std::vector<torch::Tensor> params_;
  int trace_fd_ = -1;  // STOCH_TRACE_MICRO_BATCHES: a file each step's micro-batch numbers go to
};

}  // namespace stoch::train
