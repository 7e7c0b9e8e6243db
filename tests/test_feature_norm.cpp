// model.norm for the mlp and cnn torsos: the normalisation computes what LibTorch's LayerNorm,
// one-group GroupNorm and the RMSNorm formula compute; it leaves every other layer's initial
// weights as they were, so runs with and without it start from the same network; and `none`
// keeps the network (parameters, fused path) exactly as it was before the key existed.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <string>

#include "core/errors.h"
#include "models/value_net.h"

namespace stoch {
namespace {

models::ValueNetConfig config(const std::string& torso, const std::string& norm) {
  models::ValueNetConfig c;
  c.torso = torso;
  c.hidden = {12, 10};
  c.channels = {3, 4};
  c.fc = {9};
  c.norm = norm;
  return c;
}

std::vector<int64_t> input_shape(const std::string& torso) {
  return torso == "mlp" ? std::vector<int64_t>{6} : std::vector<int64_t>{2, 5, 5};
}

models::ValueNet make(const std::string& torso, const std::string& norm) {
  torch::manual_seed(11);
  return models::ValueNet(config(torso, norm), input_shape(torso), 3);
}

std::map<std::string, torch::Tensor> params(const models::ValueNet& net) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : net->named_parameters()) out[p.key()] = p.value();
  return out;
}

TEST(FeatureNorm, NoneAddsNothingAndOtherNormsDrawNoRandomNumbers) {
  for (const std::string torso : {"mlp", "cnn"}) {
    const auto none = params(make(torso, "none"));
    for (const auto& [name, t] : none)
      EXPECT_EQ(name.find("norm"), std::string::npos) << torso << ": " << name;
    EXPECT_FALSE(make(torso, "none")->named_parameters().is_empty());
    for (const std::string norm : {"layer", "rms"}) {
      const auto with = params(make(torso, norm));
      size_t norm_params = 0;
      for (const auto& [name, t] : with) {
        if (name.find("norms.") != std::string::npos) {
          ++norm_params;
          continue;
        }
        // Same seed, same layer weights: comparisons of norms start from one network.
        ASSERT_TRUE(none.count(name)) << name;
        EXPECT_TRUE(torch::equal(t, none.at(name))) << torso << " " << norm << ": " << name;
      }
      const size_t layers = torso == "mlp" ? 2 : 3;  // hidden [12, 10]; channels [3, 4] + fc [9]
      EXPECT_EQ(norm_params, norm == "layer" ? 2 * layers : layers) << torso << " " << norm;
      EXPECT_EQ(with.size(), none.size() + norm_params);
    }
  }
}

TEST(FeatureNorm, ComputesLayerNormGroupNormAndRmsNorm) {
  torch::manual_seed(5);
  for (const std::string torso : {"mlp", "cnn"}) {
    for (const std::string norm : {"layer", "rms"}) {
      auto net = make(torso, norm);
      // Non-trivial affine parameters, so that scale and shift are checked too.
      torch::NoGradGuard no_grad;
      for (auto& p : net->named_parameters())
        if (p.key().find("norms.") != std::string::npos) p.value().uniform_(0.5, 1.5);
      std::vector<int64_t> in = {4};
      for (auto d : input_shape(torso)) in.push_back(d);
      const auto x = torch::randn(in);
      const auto p = params(net);
      const std::string pre = "torso.";
      torch::Tensor first;
      torch::Tensor w = p.at(pre + "norms.0.weight");
      torch::Tensor b = norm == "layer" ? p.at(pre + "norms.0.bias") : torch::Tensor();
      if (torso == "mlp") {
        first = torch::linear(x, p.at(pre + "layers.0.weight"), p.at(pre + "layers.0.bias"));
        first = norm == "layer" ? torch::layer_norm(first, {12}, w, b, 1e-5)
                                : first * torch::rsqrt(first.square().mean(-1, true) + 1e-5) * w;
        first = torch::relu(first);
      } else {
        first = torch::conv2d(x, p.at(pre + "convs.0.weight"), p.at(pre + "convs.0.bias"), 1, 1);
        first = norm == "layer"
                    ? torch::group_norm(first, 1, w, b, 1e-5)
                    : first * torch::rsqrt(first.square().mean({1, 2, 3}, true) + 1e-5) *
                          w.view({1, -1, 1, 1});
        first = torch::relu(first).abs().mean({2, 3});  // what hidden_units reports for a conv
      }
      const auto units = net->hidden_units(x);
      EXPECT_TRUE(torch::allclose(units[0], first, 1e-5, 1e-6)) << torso << " " << norm;
    }
  }
}

TEST(FeatureNorm, TrainsThroughTheUnfusedPathAndTheTransformerRefusesIt) {
  for (const std::string torso : {"mlp", "cnn"}) {
    auto net = make(torso, "layer");
    net->train();
    std::vector<int64_t> in = {4};
    for (auto d : input_shape(torso)) in.push_back(d);
    net->forward(torch::randn(in)).square().sum().backward();
    for (const auto& p : net->named_parameters())
      ASSERT_TRUE(p.value().grad().defined() && p.value().grad().abs().sum().item<double>() > 0)
          << torso << ": " << p.key();
    // The fused single-row path knows no normalisation and declines.
    std::vector<float> row(in.size() == 2 ? 6 : 50, 0.5f), out(3);
    EXPECT_FALSE(net->forward_row(row.data(), out.data())) << torso;
    EXPECT_TRUE(make(torso, "none")->forward_row(row.data(), out.data())) << torso;
  }
  models::ValueNetConfig c = config("transformer", "layer");
  c.d_model = 8;
  c.n_head = 2;
  const std::vector<int64_t> sequence = {3, 8};
  EXPECT_THROW(models::ValueNet(c, sequence, 2), InputError);
}

}  // namespace
}  // namespace stoch
