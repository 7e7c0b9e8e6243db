#include "train/micro_batches.h"

#include <torch/torch.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <string>
#include <thread>

#include "core/torch/device.h"
#include "train/gradient_buckets.h"

namespace stoch::train {

MicroBatchRunner::MicroBatchRunner(Task& task, int64_t accum, int64_t workers, bool bf16,
                                   const torch::Device& device, DataShard shard)
    : task_(task),
      accum_(accum),
      workers_(workers),
      bf16_(bf16),
      device_(device),
      shard_(shard),
      divisor_(static_cast<double>(accum * shard.world_size)) {
  for (const auto& p : task_.model().parameters())
    if (p.requires_grad()) params_.push_back(p);
  if (const char* trace = std::getenv("STOCH_TRACE_MICRO_BATCHES"); trace && *trace)
    trace_fd_ = ::open(trace, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

MicroBatchRunner::~MicroBatchRunner() {
  if (trace_fd_ >= 0) ::close(trace_fd_);
}

torch::Tensor MicroBatchRunner::run(int64_t step) {
  if (trace_fd_ >= 0) {
    // One write per line: appends of several ranks to one file do not interleave.
    std::string line =
        "rank " + std::to_string(shard_.rank) + " step " + std::to_string(step) + " micro";
    for (int64_t a = 0; a < accum_; ++a) line += " " + std::to_string(micro(step, a));
    line += "\n";
    if (::write(trace_fd_, line.data(), line.size()) < 0) {
      // A trace is a debugging aid: losing it must not stop training.
    }
  }
  auto total = workers_ > 1 ? run_parallel(step) : run_sequential(step);
  if (shard_.buckets) shard_.buckets->finish();
  return total;
}

torch::Tensor MicroBatchRunner::run_sequential(int64_t step) {
  auto total = torch::zeros({}, torch::TensorOptions().device(device_));
  for (int64_t a = 0; a < accum_; ++a) {
    torch::Tensor loss;
    {
      AutocastScope autocast(bf16_, device_);
      loss = task_.train_loss(micro(step, a));
    }
    // The last backward pass of the step completes the gradients: their all-reduce starts
    // bucket by bucket while it runs.
    if (shard_.buckets && a == accum_ - 1) shard_.buckets->arm();
    // Dividing by 1 changes nothing but adds a node to the graph.
    (divisor_ == 1 ? loss : loss / divisor_).backward();
    total += loss.detach().to(torch::kFloat);
  }
  return total;
}

torch::Tensor MicroBatchRunner::run_parallel(int64_t step) {
  std::vector<std::vector<torch::Tensor>> grads(static_cast<size_t>(accum_));
  std::vector<torch::Tensor> losses(static_cast<size_t>(accum_));
  for (int64_t first = 0; first < accum_; first += workers_) {
    const int64_t n = std::min(workers_, accum_ - first);
    std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
    std::vector<std::thread> threads;
    for (int64_t w = 0; w < n; ++w) {
      threads.emplace_back([&, w] {
        const size_t a = static_cast<size_t>(first + w);
        try {
          torch::Tensor loss;
          {
            // Autocast state is per thread.
            AutocastScope autocast(bf16_, device_);
            loss = task_.train_loss(micro(step, static_cast<int64_t>(a)));
          }
          // Gradients are returned, not accumulated into .grad, so that the order of the sum
          // below does not depend on which worker finishes first.
          grads[a] = torch::autograd::grad({loss / divisor_}, params_, {},
                                           /*retain_graph=*/false, /*create_graph=*/false,
                                           /*allow_unused=*/true);
          losses[a] = loss.detach().to(torch::kFloat);
        } catch (...) {
          errors[static_cast<size_t>(w)] = std::current_exception();
        }
      });
    }
    for (auto& t : threads) t.join();
    for (const auto& e : errors)
      if (e) std::rethrow_exception(e);
  }
  torch::NoGradGuard no_grad;
  auto total = torch::zeros({}, torch::TensorOptions().device(device_));
  for (size_t i = 0; i < params_.size(); ++i) {
    torch::Tensor sum;
    for (const auto& g : grads) {
      if (!g[i].defined()) continue;
      sum = sum.defined() ? sum + g[i] : g[i];
    }
    params_[i].mutable_grad() = sum;
  }
  for (const auto& l : losses) total += l;
  return total;
}

}  // namespace stoch::train
