#include "train/gradient_buckets.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include <algorithm>
#include <functional>

namespace stoch::train {
namespace {

// PyTorch DDP's default cap: large enough that per-message latency is negligible on real
// models; the lower bound keeps tiny models from sending hundreds of tiny messages.
constexpr int64_t kMaxBucketBytes = int64_t{25} << 20;
constexpr int64_t kMinBucketBytes = int64_t{64} << 10;

// Runs after a gradient accumulator has added this backward pass's gradient into .grad.
class GradReadyHook : public torch::autograd::FunctionPostHook {
 public:
  explicit GradReadyHook(std::function<void()> fn) : fn_(std::move(fn)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    fn_();
    return outputs;
  }

 private:
  std::function<void()> fn_;
};

int64_t bytes_of(const at::Tensor& t) {
  return t.numel() * static_cast<int64_t>(t.element_size());
}

}  // namespace

GradientBuckets::GradientBuckets(Distributed& dist, const std::vector<at::Tensor>& params,
                                 int64_t bucket_bytes)
    : dist_(dist) {
  // A tied weight may be listed twice; its accumulator fires once, with the summed gradient.
  for (const auto& p : params)
    if (std::none_of(params_.begin(), params_.end(),
                     [&](const at::Tensor& q) { return q.is_same(p); }))
      params_.push_back(p);
  int64_t total = 0;
  for (const auto& p : params_) total += bytes_of(p);
  const int64_t cap = bucket_bytes > 0
                          ? bucket_bytes
                          : std::min(kMaxBucketBytes, std::max(kMinBucketBytes, total / 4));

  // Reverse order: backward produces the last layers' gradients first.
  bucket_of_.resize(params_.size());
  int64_t bucket_size = 0;
  for (size_t k = params_.size(); k-- > 0;) {
    const at::Tensor& p = params_[k];
    const bool fresh = buckets_.empty() || bucket_size + bytes_of(p) > cap ||
                       params_[buckets_.back().params.front()].dtype() != p.dtype();
    if (fresh) {
      buckets_.emplace_back();
      bucket_size = 0;
    }
    Bucket& b = buckets_.back();
    b.offsets.push_back(b.params.empty() ? 0 : b.offsets.back() + params_[b.params.back()].numel());
    b.params.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    bucket_size += bytes_of(p);
  }
  for (auto& b : buckets_) {
    const at::Tensor& last = params_[b.params.back()];
    b.flat = at::zeros({b.offsets.back() + last.numel()}, last.options());
    b.waiting = b.params.size();
  }

  for (size_t i = 0; i < params_.size(); ++i) {
    auto acc = torch::autograd::impl::grad_accumulator(params_[i]);
    const uintptr_t key =
        acc->add_post_hook(std::make_unique<GradReadyHook>([this, i] { on_grad_ready(i); }));
    hooks_.emplace_back(std::move(acc), key);
  }
}

GradientBuckets::~GradientBuckets() {
  for (auto& [acc, key] : hooks_) acc->del_post_hook(key);
}

void GradientBuckets::arm() {
  std::lock_guard<std::mutex> lock(mu_);
  armed_ = true;
}

void GradientBuckets::on_grad_ready(size_t param) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!armed_) return;  // an earlier micro-batch of the step: its gradient is not final yet
  Bucket& b = buckets_[bucket_of_[param]];
  if (b.started || b.waiting == 0) return;
  if (--b.waiting == 0) start_ready_buckets();
}

void GradientBuckets::start_ready_buckets() {
  while (next_ < buckets_.size() && buckets_[next_].waiting == 0) start(buckets_[next_++]);
}

void GradientBuckets::start(Bucket& b) {
  torch::NoGradGuard no_grad;
  for (size_t j = 0; j < b.params.size(); ++j) {
    const at::Tensor& p = params_[b.params[j]];
    auto view = b.flat.narrow(0, b.offsets[j], p.numel());
    const at::Tensor& g = p.grad();
    if (g.defined())
      view.copy_(g.reshape({-1}));
    else
      view.zero_();
  }
  b.pending = dist_.all_reduce_sum_async(b.flat);
  b.started = true;
}

void GradientBuckets::finish() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    armed_ = false;
    while (next_ < buckets_.size()) start(buckets_[next_++]);
  }
  torch::NoGradGuard no_grad;
  for (auto& b : buckets_) {
    b.pending.wait();
    for (size_t j = 0; j < b.params.size(); ++j) {
      at::Tensor& p = params_[b.params[j]];
      const auto sum = b.flat.narrow(0, b.offsets[j], p.numel()).view(p.sizes());
      if (p.grad().defined())
        p.mutable_grad().copy_(sum);
      else
        p.mutable_grad() = sum.clone();
    }
    b.waiting = b.params.size();
    b.started = false;
  }
  next_ = 0;
}

}  // namespace stoch::train
