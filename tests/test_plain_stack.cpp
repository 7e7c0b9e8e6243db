// The fused value network (one autograd node, hand-written backward) against the module path
// (model.fused=false), which stays the reference: same outputs and the same gradient for every
// parameter.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/strings.h"
#include "isa_test.h"
#include "models/kernels/conv3x3.h"
#include "models/value_net.h"

namespace stoch {
namespace {

struct Case {
  std::string name, torso, activation;
  std::vector<int64_t> shape, channels, fc;
  int64_t padding;
  double density = 0;  // > 0: a binary image with this share of ones (MinAtar's frames)
};

// Test names and failure lines show the case's name, not its bytes.
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.name;
}

class PlainStack : public ::testing::TestWithParam<Case> {};

models::ValueNet make(const Case& c, bool fused) {
  models::ValueNetConfig cfg;
  cfg.torso = c.torso;
  cfg.activation = c.activation;
  cfg.hidden = {24, 16};
  cfg.channels = c.channels;
  cfg.fc = c.fc;
  cfg.padding = c.padding;
  cfg.fused = fused;
  torch::manual_seed(7);
  return models::ValueNet(cfg, c.shape, 5);
}

TEST_P(PlainStack, MatchesTheModulePathInOutputAndEveryGradient) {
  const Case& c = GetParam();
  auto fused = make(c, true);
  auto plain = make(c, false);
  std::vector<int64_t> in = {6};
  in.insert(in.end(), c.shape.begin(), c.shape.end());
  torch::manual_seed(3);
  const auto x = c.density > 0 ? torch::bernoulli(torch::full(in, c.density)) : torch::randn(in);
  const auto w = torch::randn({6, 5});  // a non-uniform upstream gradient

  const auto out_f = fused->forward(x);
  const auto out_p = plain->forward(x);
  ASSERT_EQ(out_f.sizes(), out_p.sizes());
  EXPECT_TRUE(torch::allclose(out_f, out_p, 1e-5, 1e-5)) << (out_f - out_p).abs().max();
  (out_f * w).sum().backward();
  (out_p * w).sum().backward();

  const auto pf = fused->named_parameters(), pp = plain->named_parameters();
  ASSERT_EQ(pf.size(), pp.size());
  for (const auto& item : pp) {
    const auto& gf = pf[item.key()].grad();
    const auto& gp = item.value().grad();
    ASSERT_TRUE(gf.defined()) << item.key();
    ASSERT_EQ(gf.sizes(), gp.sizes()) << item.key();
    EXPECT_TRUE(torch::allclose(gf, gp, 1e-4, 1e-5))
        << item.key() << " max diff " << (gf - gp).abs().max().item<double>();
    // Not vacuous: every gradient is non-zero.
    EXPECT_GT(gp.abs().sum().item<double>(), 0.0) << item.key();
  }

  // Without gradients (acting, bootstrapping) the fused net gives the same values.
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::allclose(fused->forward(x), out_p, 1e-5, 1e-5));
}

// Acting's host path: each row's outputs without operators match the network's forward, in
// every clone this CPU runs; a network that is not fused says so instead.
TEST_P(PlainStack, OneRowOnTheHostMatchesTheForward) {
  const Case& c = GetParam();
  auto fused = make(c, true);
  std::vector<int64_t> in = {6};
  in.insert(in.end(), c.shape.begin(), c.shape.end());
  torch::manual_seed(5);
  const auto x = (c.density > 0 ? torch::bernoulli(torch::full(in, c.density)) : torch::randn(in))
                     .contiguous();
  torch::NoGradGuard no_grad;
  const auto expected = fused->forward(x);
  std::vector<float> out(static_cast<size_t>(expected.size(1)));
  for (const CpuIsa isa : cpu_isas_runnable()) {
    test::IsaCap cap(isa);
    for (int64_t i = 0; i < 6; ++i) {
      ASSERT_TRUE(fused->forward_row(x[i].data_ptr<float>(), out.data())) << c.name;
      const auto got = torch::from_blob(out.data(), {expected.size(1)}, torch::kFloat);
      EXPECT_TRUE(torch::allclose(got, expected[i], 1e-5, 1e-5))
          << c.name << " row " << i << " (" << cpu_isa_name(isa)
          << "): " << (got - expected[i]).abs().max();
    }
  }
  EXPECT_FALSE(make(c, false)->forward_row(x[0].data_ptr<float>(), out.data()));
}

// Every clone of the row kernels, and the AVX-512 kernels (16 output channels), add the same
// terms in the same order (no fused multiply-adds): outputs and weight gradients agree bit for
// bit, dense or sparse, padded or not, with a number of positions that is not a multiple of 16,
// and they are the convolution (torch::conv2d).
class Conv3x3 : public ::testing::TestWithParam<CpuIsa> {};

TEST_P(Conv3x3, EveryCloneGivesThePortableBits) {
  const CpuIsa isa = GetParam();
  torch::manual_seed(11);
  for (const int64_t pad : {0, 1})
    for (const double density : {0.0, 0.1}) {
      const std::vector<int64_t> shape = {5, 3, 7, 9};
      const auto x =
          density > 0 ? torch::bernoulli(torch::full(shape, density)) : torch::randn(shape);
      const auto w = torch::randn({16, 3, 3, 3}), b = torch::randn({16});
      const int64_t L = (7 + 2 * pad - 2) * (9 + 2 * pad - 2);
      const auto g = torch::randn({5, 16, L});
      torch::Tensor out_portable, dw_portable;
      {
        test::IsaCap cap(CpuIsa::kPortable);
        out_portable = models::conv3x3_forward(x, w, b, pad);
        dw_portable = models::conv3x3_weight_grad(x, g, pad, 1, 5);
      }
      STOCH_USE_ISA_OR_SKIP(isa);
      for (const bool wide : {false, true}) {
        models::set_conv3x3_wide_kernels(wide);
        const auto out = models::conv3x3_forward(x, w, b, pad);
        const auto dw = models::conv3x3_weight_grad(x, g, pad, 1, 5);
        models::set_conv3x3_wide_kernels(true);
        const std::string where = stoch::str("pad ", pad, " density ", density, " wide ", wide);
        EXPECT_TRUE(torch::equal(out, out_portable)) << where;
        EXPECT_TRUE(torch::equal(dw, dw_portable)) << where;
        EXPECT_TRUE(torch::allclose(out.view({5, 16, 7 + 2 * pad - 2, 9 + 2 * pad - 2}),
                                    torch::conv2d(x, w, b, 1, pad), 1e-5, 1e-5))
            << where;
        const auto dw_ref =
            torch::conv2d(
                x.slice(0, 1, 5).transpose(0, 1),
                g.slice(0, 1, 5).view({4, 16, 7 + 2 * pad - 2, 9 + 2 * pad - 2}).transpose(0, 1),
                {}, 1, pad)
                .transpose(0, 1);
        EXPECT_TRUE(torch::allclose(dw, dw_ref, 1e-4, 1e-4)) << where;
      }
    }
}

INSTANTIATE_TEST_SUITE_P(Clones, Conv3x3, ::testing::ValuesIn(test::kEveryIsa),
                         [](const auto& info) { return test::isa_test_name(info.param); });

INSTANTIATE_TEST_SUITE_P(
    Nets, PlainStack,
    ::testing::Values(Case{"mlp_relu", "mlp", "relu", {7}, {}, {}, 0},
                      Case{"mlp_tanh", "mlp", "tanh", {2, 3}, {}, {}, 0},
                      Case{"minatar_like", "cnn", "relu", {4, 10, 10}, {16}, {32}, 0},
                      Case{
                          "minatar_binary_frames", "cnn", "relu", {4, 10, 10}, {16}, {32}, 0, 0.08},
                      Case{"binary_frames_padded", "cnn", "tanh", {3, 6, 5}, {4, 8}, {}, 1, 0.2},
                      Case{"two_convs_padded", "cnn", "relu", {3, 6, 5}, {4, 8}, {}, 1},
                      Case{"two_convs_tanh_fc", "cnn", "tanh", {2, 7, 7}, {3, 5}, {12}, 0}),
    [](const auto& info) { return info.param.name; });

TEST(PlainStackFallback, GeluAndTransformersKeepTheModulePath) {
  for (const std::string torso : {"mlp", "transformer"}) {
    models::ValueNetConfig cfg;
    cfg.torso = torso;
    cfg.activation = "gelu";
    cfg.hidden = {8};
    cfg.d_model = 8;
    cfg.n_head = 2;
    models::ValueNet net(cfg, torso == "mlp" ? std::vector<int64_t>{4} : std::vector<int64_t>{3, 4},
                         2);
    const auto x = torso == "mlp" ? torch::randn({3, 4}) : torch::randn({3, 3, 4});
    const auto out = net->forward(x);
    ASSERT_TRUE(out.grad_fn() != nullptr);
    // The module path ends in the head's addmm, not in one fused node.
    EXPECT_EQ(out.grad_fn()->name().find("PlainStack"), std::string::npos) << out.grad_fn()->name();
  }
}

}  // namespace
}  // namespace stoch
