// Torso "mlp": flatten, then Linear (+ model.norm) + activation per hidden width.
#include <torch/torch.h>

#include "core/errors.h"
#include "core/registry.h"
#include "core/strings.h"
#include "models/feature_norm.h"
#include "models/value_net.h"

namespace stoch::models {
namespace {

class MlpTorso : public Torso {
 public:
  MlpTorso(const ValueNetConfig& cfg, const std::vector<int64_t>& input_shape)
      : activation_(cfg.activation) {
    int64_t in = 1;
    for (int64_t d : input_shape) in *= d;
    layers_ = register_module("layers", torch::nn::ModuleList());
    // Registered only when asked for, so that a network without norms has the parameters (and
    // checkpoints) it always had.
    if (cfg.norm != "none") norms_ = register_module("norms", torch::nn::ModuleList());
    for (int64_t width : cfg.hidden) {
      layers_->push_back(torch::nn::Linear(in, width));
      if (norms_) norms_->push_back(FeatureNorm(cfg.norm, width));
      in = width;
    }
    features_ = in;
  }
  torch::Tensor forward(const torch::Tensor& x) override { return hidden_units(x).back(); }
  std::vector<torch::Tensor> hidden_units(const torch::Tensor& x) override {
    std::vector<torch::Tensor> out;
    auto h = x.flatten(1);
    for (size_t i = 0; i < layers_->size(); ++i) {
      h = layers_[i]->as<torch::nn::Linear>()->forward(h);
      if (norms_) h = norms_[i]->as<FeatureNorm>()->forward(h);
      h = activate(h, activation_);
      out.push_back(h);
    }
    return out;
  }
  int64_t features() const override { return features_; }
  std::vector<PlainLayer> plain_layers() const override {
    std::vector<PlainLayer> out;
    if (norms_) return out;  // the fused kernels know no normalisation
    for (const auto& l : *layers_) {
      const auto* lin = l->as<torch::nn::Linear>();
      out.push_back({PlainLayer::Kind::kLinear, lin->weight, lin->bias, 0, true});
    }
    return out;
  }

 private:
  std::string activation_;
  torch::nn::ModuleList layers_{nullptr}, norms_{nullptr};
  int64_t features_ = 0;
};

const bool registered = registry<TorsoEntry>().add(
    "mlp",
    {"fully connected layers on the flattened input",
     [](const ValueNetConfig& cfg, const std::vector<int64_t>& shape) -> std::shared_ptr<Torso> {
       if (cfg.hidden.empty())
         throw InputError("model.hidden: expected at least one width for torso mlp");
       return std::make_shared<MlpTorso>(cfg, shape);
     }});

}  // namespace
}  // namespace stoch::models
