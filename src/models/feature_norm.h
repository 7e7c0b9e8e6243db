// model.norm for the mlp and cnn torsos: a normalisation between each hidden layer's linear
// map (or convolution) and its activation, the most likely difference between the networks of
// "Stop Regressing" and stoch's (issue 18). Over all of one sample's units of the layer (for a
// convolution: channels and positions, as a one-group GroupNorm), then a learned scale (and,
// for layer, shift) per unit or channel.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include <string>

namespace stoch::models {

class FeatureNormImpl : public torch::nn::Module {
 public:
  // kind: "layer" (LayerNorm: centre, scale to unit variance, scale and shift) or "rms"
  // (RMSNorm: scale to unit root mean square, then scale); `units`: the size of dim 1.
  FeatureNormImpl(const std::string& kind, int64_t units);
  torch::Tensor forward(const torch::Tensor& x);

 private:
  bool rms_ = false;
  torch::Tensor weight_, bias_;
};
TORCH_MODULE(FeatureNorm);

}  // namespace stoch::models
