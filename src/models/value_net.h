// Value networks: a torso (MLP, small CNN or small transformer) that maps an input to a
// feature vector, then one linear head with as many outputs as the value loss needs (1 for a
// scalar head, num_bins for a categorical one). Every loss trains the same torso, so
// comparisons between losses change nothing but the head and the loss.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>

#include <functional>
#include <string>
#include <vector>

#include "core/config_schema.h"
#include "models/plain_stack.h"

namespace stoch::models {

// The registered torsos' names (registry<TorsoEntry>, models/torso_*.cpp), for model.torso.
std::vector<std::string> torso_names();

struct ValueNetConfig {
  std::string torso = "mlp";
  std::vector<int64_t> hidden = {256, 256};
  std::vector<int64_t> channels = {16, 32};
  std::vector<int64_t> fc = {};
  int64_t padding = 1;
  int64_t n_layer = 2;
  int64_t n_head = 4;
  int64_t d_model = 64;
  std::string activation = "relu";
  std::string norm = "none";
  bool fused = true;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("torso", torso, "feature extractor", Spec().one_of(torso_names()));
    v("hidden", hidden, "mlp: widths of the hidden layers (the last is the feature size)",
      Spec().at_least(1));
    v("channels", channels, "cnn: channels of each 3x3 conv layer", Spec().at_least(1));
    v("padding", padding,
      "cnn: zero padding of each 3x3 convolution (1 keeps the size; MinAtar's reference: 0)",
      Spec().at_least(0).at_most(1));
    v("fc", fc,
      "cnn: widths of fully connected layers after the flattened convolutions (MinAtar: [128])",
      Spec().at_least(1));
    v("n_layer", n_layer, "transformer: encoder blocks", Spec().at_least(1));
    v("n_head", n_head, "transformer: attention heads", Spec().at_least(1));
    v("d_model", d_model, "transformer: width (also the feature size)", Spec().at_least(1));
    v("activation", activation, "mlp and cnn nonlinearity",
      Spec().one_of({"relu", "gelu", "tanh"}));
    v("norm", norm,
      "mlp and cnn: normalisation between each hidden layer's linear map and its activation "
      "(layer: LayerNorm, rms: RMSNorm; any but none turns off the fused path)",
      Spec().one_of({"none", "layer", "rms"}));
    v("fused", fused,
      "mlp and cnn with relu or tanh: run torso and head as one autograd node with a "
      "hand-written backward (same math, far fewer operators)");
  }
};

// Maps [B, ...input_shape] to features [B, F].
class Torso : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  virtual int64_t features() const = 0;
  // Each hidden layer's units after their nonlinearity, as [B, units] (a conv layer's units are
  // its channels, averaged over positions): what dormant-neuron counts look at.
  virtual std::vector<torch::Tensor> hidden_units(const torch::Tensor& x) { return {forward(x)}; }
  // The layers, when the torso is a plain stack of 3x3 convolutions and linear layers each
  // followed by its activation (what plain_stack_forward runs); empty otherwise.
  virtual std::vector<PlainLayer> plain_layers() const { return {}; }
};

// input_shape: [D] for mlp, [C, H, W] for cnn, [T, D] for transformer (a sequence of T vectors).
using TorsoFactory = std::function<std::shared_ptr<Torso>(const ValueNetConfig&,
                                                          const std::vector<int64_t>& input_shape)>;
struct TorsoEntry {
  std::string doc;
  TorsoFactory make;
};

class ValueNetImpl : public torch::nn::Module {
 public:
  ValueNetImpl(const ValueNetConfig& cfg, const std::vector<int64_t>& input_shape,
               int64_t head_outputs);

  torch::Tensor features(const torch::Tensor& x) { return torso_->forward(x); }
  std::vector<torch::Tensor> hidden_units(const torch::Tensor& x) {
    return torso_->hidden_units(x);
  }
  torch::Tensor head(const torch::Tensor& f) { return head_->forward(f); }
  // Torso then head; one autograd node when the config asks for it and the torso allows.
  torch::Tensor forward(const torch::Tensor& x);
  // The head's outputs for one input row on the host, without operators (acting); false when
  // the network is not fused or not a float32 CPU network (callers then use forward).
  bool forward_row(const float* x, float* out) const;
  // A helper lane for the fused backward's weight gradients (null: none); its owner keeps it
  // alive while this network trains.
  void set_lane(Lane* lane) { lane_ = lane; }

 private:
  std::shared_ptr<Torso> torso_;
  bool fused_ = false;
  Lane* lane_ = nullptr;
  std::string activation_;
  std::vector<int64_t> input_shape_;
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(ValueNet);

torch::Tensor activate(const torch::Tensor& x, const std::string& activation);

}  // namespace stoch::models
