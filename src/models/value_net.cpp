#include "models/value_net.h"
#include "models/value_net_size.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

#include <optional>

#include "core/errors.h"
#include "core/registry.h"
#include "core/strings.h"

namespace stoch::models {

std::vector<std::string> torso_names() {
  return registry<TorsoEntry>().names();
}

torch::Tensor activate(const torch::Tensor& x, const std::string& activation) {
  if (activation == "gelu") return torch::gelu(x);
  if (activation == "tanh") return torch::tanh(x);
  return torch::relu(x);
}

ValueNetImpl::ValueNetImpl(const ValueNetConfig& cfg, const std::vector<int64_t>& input_shape,
                           int64_t head_outputs) {
  torso_ = register_module(
      "torso", registry<TorsoEntry>().get(cfg.torso, "model.torso").make(cfg, input_shape));
  head_ = register_module("head", torch::nn::Linear(torso_->features(), head_outputs));
  fused_ =
      cfg.fused && plain_activation_supported(cfg.activation) && !torso_->plain_layers().empty();
  activation_ = cfg.activation;
  input_shape_ = input_shape;
}

bool ValueNetImpl::forward_row(const float* x, float* out) const {
  if (!fused_) return false;
  auto layers = torso_->plain_layers();
  layers.push_back({PlainLayer::Kind::kLinear, head_->weight, head_->bias, 0, false});
  return plain_stack_forward_row(layers, activation_, input_shape_, x, out);
}

torch::Tensor ValueNetImpl::forward(const torch::Tensor& x) {
  // Autocast picks per-operator precisions the hand-written backward does not follow.
  if (!fused_ || x.requires_grad() || at::autocast::is_autocast_enabled(x.device().type()))
    return head(features(x));
  // The layer list is rebuilt per call (a few handles) so that it always holds the module's
  // current parameters, whatever replaced them since.
  auto layers = torso_->plain_layers();
  layers.push_back({PlainLayer::Kind::kLinear, head_->weight, head_->bias, 0, false});
  return plain_stack_forward(layers, activation_, x, lane_);
}

int64_t value_net_parameter_count(const ValueNetConfig& cfg,
                                  const std::vector<int64_t>& input_shape, int64_t outputs) {
  // Building draws the initial weights from the global generator: put its state back, so that
  // estimating a run changes nothing the run then draws.
  auto gen = at::detail::getDefaultCPUGenerator();
  at::Tensor state;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    state = gen.get_state();
  }
  // A network whose weights alone cannot be allocated is an input the estimate refuses (exit 2),
  // not a failure of the run (the allocator's error, exit 1).
  std::optional<ValueNet> net;
  std::string failure;
  try {
    net.emplace(cfg, input_shape, outputs);
  } catch (const c10::Error& e) {
    failure = e.what_without_backtrace();
  }
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(state);
  }
  if (!net)
    throw InputError(stoch::str("model: the network's weights alone cannot be allocated (",
                                failure.substr(0, failure.find('\n')),
                                "); lower model.hidden, model.channels or model.d_model"));
  int64_t n = 0;
  for (const auto& p : (*net)->parameters()) n += p.numel();
  return n;
}

}  // namespace stoch::models
