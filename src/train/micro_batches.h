// Runs the micro-batches of one optimiser step and leaves their gradient in the parameters.
// With workers > 1, that many micro-batches run at once on single-threaded workers: on a few CPU
// cores, small models scale better across independent micro-batches than inside each kernel.
// Each worker's gradient is kept apart and the sum is taken in micro-batch order, so the result
// is deterministic (and resume exact) for a given worker count.
#pragma once

#include <torch/nn/module.h>

#include <vector>

#include "train/task.h"

namespace stoch::train {

class MicroBatchRunner {
 public:
  MicroBatchRunner(Task& task, int64_t accum, int64_t workers, bool bf16,
                   const torch::Device& device);

  // Computes micro-batches step * accum .. step * accum + accum - 1; each loss is divided by
  // accum before its gradient is taken. Returns the sum of the (undivided) losses, detached.
  torch::Tensor run(int64_t step);

 private:
  torch::Tensor run_sequential(int64_t step);
  torch::Tensor run_parallel(int64_t step);

  Task& task_;
  int64_t accum_, workers_;
  bool bf16_;
  torch::Device device_;
  std::vector<torch::Tensor> params_;
};

}  // namespace stoch::train
