#include "train/value_regression_task.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

#include "core/errors.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/rng.h"
#include "core/strings.h"
#include "core/torch/state_tensors.h"
#include "models/value_net_size.h"
#include "train/experiment.h"

namespace stoch::train {
namespace {

// Stream tags for mix_seed, so inputs, targets and batches never share random numbers.
constexpr uint64_t kInputs = 1, kTargetNet = 2, kBatch = 3;

// f(x) of a freshly initialised random MLP (two ReLU layers, He-normal weights), evaluated in
// float64 and drawn from stoch's own generator: the targets never touch LibTorch's RNG.
torch::Tensor random_network_output(const torch::Tensor& x_flat, int64_t width, uint64_t seed) {
  Rng rng(seed);
  auto layer = [&](int64_t in, int64_t out) {
    auto w = torch::empty({in, out}, torch::kDouble);
    auto* p = w.data_ptr<double>();
    const double std = std::sqrt(2.0 / static_cast<double>(in));
    for (int64_t i = 0; i < in * out; ++i) p[i] = rng.normal() * std;
    return w;
  };
  auto h = torch::relu(torch::matmul(x_flat, layer(x_flat.size(1), width)));
  h = torch::relu(torch::matmul(h, layer(width, width)));
  return torch::matmul(h, layer(width, 1)).squeeze(1);
}

}  // namespace

ValueRegressionTask::ValueRegressionTask(const ExperimentConfig& cfg, const torch::Device& device)
    : run_seed_(static_cast<uint64_t>(cfg.run.seed)),
      batch_size_(cfg.train.batch_size),
      micros_per_step_(cfg.train.grad_accum),
      device_(device) {
  const auto& s = cfg.task_sections<ValueRegressionSections>();
  data_ = s.data;
  if (data_.offsets.empty()) throw InputError("data.offsets: expected at least one phase offset");
  if (data_.kind == "noisy" && data_.offsets.size() != 1)
    throw InputError("data.offsets: kind noisy has one phase; give a single offset");
  const uint64_t seed = static_cast<uint64_t>(data_.seed);

  std::vector<int64_t> shape = {data_.num_inputs};
  shape.insert(shape.end(), data_.input_shape.begin(), data_.input_shape.end());
  auto x = torch::empty(shape, torch::kDouble);
  Rng rng(mix_seed(seed, kInputs));
  auto* p = x.data_ptr<double>();
  for (int64_t i = 0; i < x.numel(); ++i) p[i] = rng.normal();
  const auto flat = x.reshape({data_.num_inputs, -1});

  std::vector<torch::Tensor> per_phase;
  for (size_t k = 0; k < data_.offsets.size(); ++k) {
    const auto f = random_network_output(flat, data_.target_width, mix_seed(seed, kTargetNet, k));
    per_phase.push_back(torch::sin(data_.frequency * f) + data_.offsets[k]);
  }
  inputs_ = x.to(torch::kFloat).to(device_);
  targets_ = torch::stack(per_phase).to(torch::kFloat).to(device_);

  value::ValueLossConfig value_cfg = s.value;
  // sin(...) + b stays within 1 of b; noise U(0, noise) adds up to `noise`: auto's support, and
  // where running bins may go.
  const auto [lo, hi] = std::minmax_element(data_.offsets.begin(), data_.offsets.end());
  const value::Bounds targets{*lo - 1, *hi + 1 + data_.noise};
  const bool categorical = value::make_value_loss(s.value)->categorical();
  if (categorical && value_cfg.support == "auto") {
    value_cfg.v_min = targets.lo;
    value_cfg.v_max = targets.hi;
    log::info(stoch::str("value.support auto: targets sin(.) + b with b in [", *lo, ", ", *hi,
                         "] and noise up to ", data_.noise, ": support [", targets.lo, ", ",
                         targets.hi, "]"));
  }
  loss_ = value::make_value_loss(value_cfg);
  loss_->to(device_);
  bounds_ = {value_cfg.v_min, value_cfg.v_max};
  if (categorical && value_cfg.support == "running")
    running_ = std::make_unique<value::RunningSupport>(
        value_cfg.v_min, value_cfg.v_max, value_cfg.support_k, value_cfg.support_rate, targets);
  net_ = models::ValueNet(s.model, data_.input_shape, loss_->head_outputs());
  net_->to(device_);
}

int64_t ValueRegressionTask::phase_of_step(int64_t step) const {
  return std::min<int64_t>(step / data_.steps_per_phase,
                           static_cast<int64_t>(data_.offsets.size()) - 1);
}

std::pair<torch::Tensor, torch::Tensor> ValueRegressionTask::batch(int64_t micro) const {
  const int64_t phase = phase_of_step(micro / micros_per_step_);
  Rng rng(mix_seed(run_seed_, kBatch, static_cast<uint64_t>(micro)));
  auto idx = torch::empty({batch_size_}, torch::kLong);
  auto* ip = idx.data_ptr<int64_t>();
  for (int64_t i = 0; i < batch_size_; ++i)
    ip[i] = static_cast<int64_t>(rng.below(data_.num_inputs));
  idx = idx.to(device_);
  auto y = targets_[phase].index_select(0, idx);
  if (data_.noise > 0) {
    auto n = torch::empty({batch_size_}, torch::kFloat);
    auto* np = n.data_ptr<float>();
    for (int64_t i = 0; i < batch_size_; ++i)
      np[i] = static_cast<float>(rng.uniform() * data_.noise);
    y = y + n.to(device_);
  }
  return {idx, y};
}

void ValueRegressionTask::advance_support(int64_t step) {
  if (!running_) return;
  // The first of a step's workers moves the bins; the others wait, then find them moved (each
  // had folded the step's targets in, and swapped the bounds under the others' losses).
  std::lock_guard<std::mutex> lock(support_mu_);
  if (support_steps_ >= step) return;
  for (; support_steps_ < step; ++support_steps_) {
    for (int64_t m = 0; m < micros_per_step_; ++m) {
      const auto y =
          batch(support_steps_ * micros_per_step_ + m).second.to(torch::kCPU).contiguous();
      running_->observe(y.data_ptr<float>(), y.numel());
    }
  }
  bounds_ = running_->bounds();
  loss_->set_bounds(bounds_.lo, bounds_.hi);
}

torch::Tensor ValueRegressionTask::train_loss(int64_t micro) {
  advance_support(micro / micros_per_step_);
  const auto [idx, y] = batch(micro);
  return loss_->loss(net_->forward(inputs_.index_select(0, idx)), y);
}

Metrics ValueRegressionTask::evaluate(int64_t step) {
  torch::NoGradGuard no_grad;
  net_->eval();
  const int64_t phase = phase_of_step(std::max<int64_t>(step - 1, 0));
  // Noise U(0, noise) shifts the conditional mean by noise / 2: that is the best possible fit.
  const auto y = targets_[phase] + data_.noise / 2;
  Metrics m;
  double sq = 0.0, loss = 0.0;
  const int64_t chunk = 4096;
  for (int64_t i = 0; i < data_.num_inputs; i += chunk) {
    const int64_t j = std::min(data_.num_inputs, i + chunk);
    const auto out = net_->forward(inputs_.slice(0, i, j));
    sq += (loss_->value(out) - y.slice(0, i, j)).pow(2).sum().item<double>();
    loss += loss_->loss(out, y.slice(0, i, j)).item<double>() * static_cast<double>(j - i);
  }
  const double n = static_cast<double>(data_.num_inputs);
  m["fit/mse"] = sq / n;
  m["val/loss"] = loss / n;
  m["phase"] = static_cast<double>(phase);
  if (loss_->categorical()) {
    m["value/support_lo"] = bounds_.lo;
    m["value/support_hi"] = bounds_.hi;
  }
  m["phase/offset"] = data_.offsets[static_cast<size_t>(phase)];
  return m;
}

const hooks::ValueView* ValueRegressionTask::value_view() {
  if (!view_.net) {
    view_.net = net_.get();
    view_.loss = loss_.get();
    view_.eval_inputs = inputs_;
    view_.eval_targets = [this](int64_t step) {
      return targets_[phase_of_step(std::max<int64_t>(step - 1, 0))] + data_.noise / 2;
    };
  }
  return &view_;
}

void ValueRegressionTask::save_state(Checkpoint& ckpt) const {
  if (!running_) return;
  auto state = running_->state();
  state.push_back(static_cast<double>(support_steps_));
  ckpt.tensors["value_support"] = {{"running", torch::tensor(state, torch::kDouble)}};
}

void ValueRegressionTask::load_state(const Checkpoint& ckpt) {
  if (!running_) return;
  const std::string what = ckpt.dir + ": value_support";
  const auto it = ckpt.tensors.find("value_support");
  if (it == ckpt.tensors.end()) throw InputError(what + ": missing (value.support is running)");
  const auto t = tensor_named(it->second, "running", what).to(torch::kDouble).contiguous();
  std::vector<double> state(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  if (state.empty() || state.back() < 0 || state.back() != std::floor(state.back()))
    throw InputError(what + ": expected the running support's state and a step count");
  support_steps_ = static_cast<int64_t>(state.back());
  state.pop_back();
  running_->load(state, what);
  bounds_ = running_->bounds();
  loss_->set_bounds(bounds_.lo, bounds_.hi);
}

std::string ValueRegressionTask::summary(const Metrics& last_eval) const {
  auto it = last_eval.find("fit/mse");
  if (it == last_eval.end()) return "";
  return stoch::str("summary: fit/mse ", format_number(it->second, 4), " on phase ",
                    static_cast<int64_t>(last_eval.at("phase")), " (offset ",
                    format_number(last_eval.at("phase/offset"), 4),
                    "); the target's variance is about 0.5");
}

namespace {
// Lower bounds (train/memory_estimate.h): the fixed input set and its targets, and the network
// with gradients and Adam moments.
MemoryEstimate estimate_value_regression_memory(const ExperimentConfig& cfg,
                                                int64_t /*world_size*/) {
  const auto& s = cfg.task_sections<ValueRegressionSections>();
  double input = 1;
  for (const int64_t d : s.data.input_shape) input *= static_cast<double>(d);
  const double n = static_cast<double>(s.data.num_inputs);
  MemoryEstimate e;
  e.add("data (inputs and targets)", 4 * n * (input + 1), "data.num_inputs or data.input_shape");
  const int64_t outputs = value::make_value_loss(s.value)->head_outputs();
  add_training_state(
      e,
      static_cast<double>(models::value_net_parameter_count(s.model, s.data.input_shape, outputs)),
      1.0, kValueNetSizeKeys);
  return e;
}

const bool registered = register_task<ValueRegressionSections, ValueRegressionTask>(
    "value_regression", "supervised value network on generated targets (non-stationary or noisy)",
    "fit/mse", estimate_value_regression_memory);
}  // namespace

}  // namespace stoch::train
