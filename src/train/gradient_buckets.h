// Sums gradients over the ranks of a data-parallel run while the backward pass is still going,
// as PyTorch's DistributedDataParallel does. Parameters are grouped into buckets in reverse
// order (the order backward produces their gradients); an autograd hook on each parameter's
// gradient accumulator notices when a bucket is complete and starts its all-reduce at once, so
// communication overlaps the rest of the backward pass. Buckets start strictly in order on every
// rank, because Gloo pairs collectives by the order they are issued.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "train/distributed.h"

namespace torch::autograd {
struct Node;
}

namespace stoch::train {

class GradientBuckets {
 public:
  // Buckets of at most `bucket_bytes` (0: a quarter of all gradient bytes, clamped to
  // [64 KB, 25 MB], so even small models get some overlap). `params` are the trained parameters.
  GradientBuckets(Distributed& dist, const std::vector<at::Tensor>& params, int64_t bucket_bytes);
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  // The next backward pass completes this step's local gradients: start each bucket's
  // all-reduce as soon as its gradients are accumulated.
  void arm();

  // Starts the buckets the backward pass did not (all of them when gradients were set without
  // a backward pass, or a parameter got none), waits for every bucket, and writes the sums
  // back into .grad. Parameters no rank used get a zero gradient.
  void finish();

  size_t num_buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    std::vector<int64_t> offsets;
    at::Tensor flat;     // the bucket's gradients, end to end
    size_t waiting = 0;  // parameters whose gradient is not accumulated yet
    Distributed::Pending pending;
    bool started = false;
  };

  void on_grad_ready(size_t param);
  void start_ready_buckets();  // in order, up to the first incomplete one
  void start(Bucket& b);

  Distributed& dist_;
  std::vector<at::Tensor> params_;
  std::vector<size_t> bucket_of_;
  std::vector<Bucket> buckets_;
  size_t next_ = 0;  // first bucket not started
  bool armed_ = false;
  std::mutex mu_;  // hooks run on the autograd thread (a device thread on CUDA)
  // Each parameter's gradient accumulator and the key of our hook on it; holding the
  // accumulator keeps it (and the hook) alive across backward passes.
  std::vector<std::pair<std::shared_ptr<torch::autograd::Node>, uintptr_t>> hooks_;
};

}  // namespace stoch::train
