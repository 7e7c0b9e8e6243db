#include "models/value_net.h"

#include <torch/torch.h>

#include "core/errors.h"
#include "core/registry.h"
#include "core/strings.h"

namespace stoch::models {

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
}

}  // namespace stoch::models
