// Torso "cnn": 3x3 convolutions (stride 1) with activations, then flatten, then optional fully
// connected layers, each layer's output normalised before its activation when model.norm asks:
// MinAtar's reference network is channels [16], padding 0, fc [128].
#include <torch/torch.h>

#include "core/errors.h"
#include "core/registry.h"
#include "core/strings.h"
#include "models/feature_norm.h"
#include "models/value_net.h"

namespace stoch::models {
namespace {

class CnnTorso : public Torso {
 public:
  CnnTorso(const ValueNetConfig& cfg, const std::vector<int64_t>& shape)
      : activation_(cfg.activation), padding_(cfg.padding) {
    convs_ = register_module("convs", torch::nn::ModuleList());
    // Registered only when asked for: without norms the parameters are the ones they always were.
    if (cfg.norm != "none") norms_ = register_module("norms", torch::nn::ModuleList());
    int64_t in = shape[0], h = shape[1], w = shape[2];
    for (int64_t c : cfg.channels) {
      convs_->push_back(
          torch::nn::Conv2d(torch::nn::Conv2dOptions(in, c, 3).stride(1).padding(cfg.padding)));
      if (norms_) norms_->push_back(FeatureNorm(cfg.norm, c));
      in = c;
      h += 2 * cfg.padding - 2;
      w += 2 * cfg.padding - 2;
    }
    if (h < 1 || w < 1)
      throw InputError(stoch::str("model.channels: ", cfg.channels.size(),
                                  " unpadded 3x3 convolutions shrink the input to nothing"));
    features_ = in * h * w;
    fcs_ = register_module("fcs", torch::nn::ModuleList());
    for (int64_t w : cfg.fc) {
      fcs_->push_back(torch::nn::Linear(features_, w));
      if (norms_) norms_->push_back(FeatureNorm(cfg.norm, w));
      features_ = w;
    }
  }
  torch::Tensor forward(const torch::Tensor& x) override {
    auto h = x;
    for (size_t i = 0; i < convs_->size(); ++i)
      h = layer(i, convs_[i]->as<torch::nn::Conv2d>()->forward(h));
    h = h.flatten(1);
    for (size_t i = 0; i < fcs_->size(); ++i)
      h = layer(convs_->size() + i, fcs_[i]->as<torch::nn::Linear>()->forward(h));
    return h;
  }
  std::vector<torch::Tensor> hidden_units(const torch::Tensor& x) override {
    std::vector<torch::Tensor> out;
    auto h = x;
    for (size_t i = 0; i < convs_->size(); ++i) {
      h = layer(i, convs_[i]->as<torch::nn::Conv2d>()->forward(h));
      out.push_back(h.abs().mean({2, 3}));
    }
    h = h.flatten(1);
    for (size_t i = 0; i < fcs_->size(); ++i) {
      h = layer(convs_->size() + i, fcs_[i]->as<torch::nn::Linear>()->forward(h));
      out.push_back(h.abs());
    }
    return out;
  }
  int64_t features() const override { return features_; }
  std::vector<PlainLayer> plain_layers() const override {
    std::vector<PlainLayer> out;
    if (norms_) return out;  // the fused kernels know no normalisation
    for (const auto& c : *convs_) {
      const auto* conv = c->as<torch::nn::Conv2d>();
      out.push_back({PlainLayer::Kind::kConv3x3, conv->weight, conv->bias, padding_, true});
    }
    for (const auto& f : *fcs_) {
      const auto* lin = f->as<torch::nn::Linear>();
      out.push_back({PlainLayer::Kind::kLinear, lin->weight, lin->bias, 0, true});
    }
    return out;
  }

 private:
  // Layer i's output (convolutions first, then the fully connected layers), normalised when
  // model.norm asks, through the activation.
  torch::Tensor layer(size_t i, const torch::Tensor& pre) {
    return activate(norms_ ? norms_[i]->as<FeatureNorm>()->forward(pre) : pre, activation_);
  }

  std::string activation_;
  int64_t padding_ = 0;
  torch::nn::ModuleList convs_{nullptr}, fcs_{nullptr}, norms_{nullptr};
  int64_t features_ = 0;
};

const bool registered = registry<TorsoEntry>().add(
    "cnn",
    {"3x3 convolutions on [C, H, W] inputs, flattened",
     [](const ValueNetConfig& cfg, const std::vector<int64_t>& shape) -> std::shared_ptr<Torso> {
       if (shape.size() != 3)
         throw InputError(stoch::str("model.torso: cnn needs [C, H, W] inputs, got ", shape.size(),
                                     " dimensions"));
       if (cfg.channels.empty())
         throw InputError("model.channels: expected at least one layer for torso cnn");
       return std::make_shared<CnnTorso>(cfg, shape);
     }});

}  // namespace
}  // namespace stoch::models
