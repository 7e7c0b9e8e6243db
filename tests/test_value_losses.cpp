// Value losses and their target distributions, checked against their definitions (two-hot,
// HL-Gauss with its integral over each bin, the C51 projection): hand-computed cases, exact
// identities (mass, mean) and the size of the errors the theory allows.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/errors.h"
#include "value/targets.h"
#include "value/value_loss.h"

namespace stoch {
namespace {

using value::ValueLossConfig;

const torch::Dtype kFloatTypes[] = {torch::kFloat32, torch::kFloat64};

double max_abs(const torch::Tensor& t) {
  return t.abs().max().item<double>();
}

// Expectation of distributions [..., m] over a support [m].
torch::Tensor mean_over(const torch::Tensor& p, const torch::Tensor& support) {
  return torch::matmul(p, support.to(p.scalar_type()));
}

// ---- target distributions ----

TEST(ValueLoss, TargetDistributionsSumToOneInsideAndOutsideTheSupport) {
  torch::manual_seed(0);
  const int64_t m = 101;
  for (auto dt : kFloatTypes) {
    const auto edges = value::bin_edges(-10, 10, m, dt);
    const auto centres = value::bin_centres(-10, 10, m, dt);
    auto y = torch::cat({torch::rand({7 * 64}, dt) * 60 - 30,  // a third inside [-10, 10]
                         torch::tensor({-1e6, 1e6, -10.0, 10.0, 0.0}, dt)})
                 .reshape({-1});
    const double tol = dt == torch::kFloat32 ? 1e-5 : 1e-12;
    for (const auto& p :
         {value::two_hot_targets(y, centres), value::hl_gauss_targets(y, edges, 0.75 * 20.0 / m)}) {
      EXPECT_EQ(p.scalar_type(), dt);
      EXPECT_EQ(p.sizes(), torch::IntArrayRef({y.size(0), m}));
      EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
      EXPECT_GE(p.min().item<double>(), 0.0);
      EXPECT_LT(max_abs(p.sum(-1) - 1), tol);
    }
  }
}

TEST(ValueLoss, TwoHotPreservesTheMeanInsideTheSupport) {
  torch::manual_seed(1);
  const int64_t m = 101;
  for (auto dt : kFloatTypes) {
    const auto c = value::bin_centres(-10, 10, m, dt);
    const double lo = c[0].item<double>(), hi = c[m - 1].item<double>();
    const auto y = torch::rand({1000}, dt) * (hi - lo) + lo;
    const auto err = max_abs(mean_over(value::two_hot_targets(y, c), c) - y);
    // Exact in real arithmetic; float32 leaves a few ulps of |y| <= 10 (ulp(10) = 9.5e-7).
    EXPECT_LT(err, dt == torch::kFloat64 ? 1e-12 : 4e-6) << dt;
    // Outside the support the mean is the clamped value.
    const auto out = value::two_hot_targets(torch::tensor({-50.0, 50.0}, dt), c);
    EXPECT_NEAR(mean_over(out, c)[0].item<double>(), lo, 1e-6);
    EXPECT_NEAR(mean_over(out, c)[1].item<double>(), hi, 1e-6);
  }
}

TEST(ValueLoss, TwoHotOnACentrePutsAllMassThere) {
  const int64_t m = 21;
  const auto c = value::bin_centres(-10, 10, m, torch::kFloat64);
  for (int64_t k : {0L, 7L, 10L, m - 1}) {
    const auto p = value::two_hot_targets(c[k], c);
    EXPECT_EQ(p.sizes(), torch::IntArrayRef({m}));
    EXPECT_EQ(p[k].item<double>(), 1.0) << k;
    EXPECT_EQ(p.sum().item<double>(), 1.0) << k;
  }
  // Between two centres the split is linear: a quarter of the way up gives 3/4, 1/4.
  const auto p = value::two_hot_targets(c[3] * 0.75 + c[4] * 0.25, c);
  EXPECT_NEAR(p[3].item<double>(), 0.75, 1e-12);
  EXPECT_NEAR(p[4].item<double>(), 0.25, 1e-12);
}

TEST(ValueLoss, HlGaussReadBackIsCloseToTheTargetInTheInterior) {
  torch::manual_seed(2);
  const int64_t m = 101;
  const double w = 20.0 / m, sigma = 0.75 * w;
  for (auto dt : kFloatTypes) {
    const auto edges = value::bin_edges(-10, 10, m, dt);
    const auto c = value::bin_centres(-10, 10, m, dt);
    // 6 sigma from the ends the truncated mass is ~1e-9: only the binning bias is left. By Poisson
    // summation it is a sawtooth of amplitude (w / pi) exp(-2 pi^2 sigma^2 / w^2) ~ 5e-6 w (float64
    // measures 4.8e-6 w); float32 rounding adds ~1.5e-5 w.
    const double lo = -10 + 6 * sigma, hi = 10 - 6 * sigma;
    const auto y = torch::rand({1000}, dt) * (hi - lo) + lo;
    const auto err = max_abs(mean_over(value::hl_gauss_targets(y, edges, sigma), c) - y);
    EXPECT_LT(err, dt == torch::kFloat64 ? 1e-5 * w : 1e-4 * w) << dt << " err " << err;
  }
  // At an end the truncated Gaussian's mean sits ~0.8 sigma inside (half-normal), never beyond.
  const auto edges = value::bin_edges(-10, 10, m, torch::kFloat64);
  const auto c = value::bin_centres(-10, 10, m, torch::kFloat64);
  const double top =
      mean_over(value::hl_gauss_targets(torch::tensor(10.0), edges, sigma), c).item<double>();
  EXPECT_LT(top, 10 - 0.5 * sigma);
  EXPECT_GT(top, 10 - 2 * sigma);
}

TEST(ValueLoss, HlGaussIsFiniteFarOutsideTheSupportInFloat32) {
  const int64_t m = 101;
  const auto edges = value::bin_edges(-10, 10, m, torch::kFloat32);
  const auto p = value::hl_gauss_targets(torch::tensor({1e6f, -1e6f, 1e30f}), edges, 0.75 * 20 / m);
  EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
  EXPECT_LT(max_abs(p.sum(-1) - 1), 1e-5);
  EXPECT_EQ(p[0].argmax().item<int64_t>(), m - 1);
  EXPECT_EQ(p[1].argmax().item<int64_t>(), 0);
}

// The CPU loops against the definition written with LibTorch's operators in float64: the
// Gaussian's mass in each bin of the support, renormalised, y clamped onto the support; wide and
// narrow sigmas, uneven edges, and targets on, between and beyond the edges.
TEST(ValueLoss, HlGaussIsTheGaussianMassOfEachBin) {
  torch::manual_seed(6);
  const auto edges = torch::cat(
      {torch::tensor({-3.0}), std::get<0>(torch::sort(torch::rand({30}, torch::kFloat64) * 8 - 3)),
       torch::tensor({5.0})});
  const auto y = torch::cat({torch::rand({200}, torch::kFloat64) * 12 - 5, edges.narrow(0, 0, 5),
                             torch::tensor({-1e9, 1e9})});
  for (double sigma : {0.01, 0.2, 3.0})
    for (auto dt : kFloatTypes) {
      // The definition on the inputs as the loss sees them (rounded to dt).
      const auto e = edges.to(dt).to(torch::kFloat64);
      const auto yc = torch::clamp(y.to(dt).to(torch::kFloat64), e[0], e[31]).unsqueeze(-1);
      const auto cdf = torch::erf((e - yc) / (sigma * std::sqrt(2.0)));
      const auto mass = (cdf.narrow(-1, 1, 31) - cdf.narrow(-1, 0, 31)).clamp_min(0);
      const auto ref = mass / mass.sum(-1, true);
      const auto p = value::hl_gauss_targets(y.to(dt), edges.to(dt), sigma);
      ASSERT_EQ(p.scalar_type(), dt);
      ASSERT_EQ(p.sizes(), ref.sizes());
      EXPECT_LT(max_abs(p.to(torch::kFloat64) - ref), dt == torch::kFloat64 ? 1e-13 : 1e-6)
          << dt << " sigma " << sigma;
    }
}

// ---- C51 projection ----

TEST(ValueLoss, C51ProjectionConservesMass) {
  torch::manual_seed(3);
  for (auto dt : kFloatTypes) {
    const auto atoms = torch::linspace(-10, 10, 51, dt);
    const auto probs = torch::softmax(torch::randn({16, 51}, dt) * 3, -1);
    const auto rewards = torch::rand({16}, dt) * 30 - 15;  // some push mass past both ends
    const auto discounts = torch::tensor({0.0, 0.5, 0.99, 1.0}, dt).repeat(4);
    const auto t = value::c51_project(probs, rewards, discounts, atoms);
    EXPECT_EQ(t.sizes(), probs.sizes());
    EXPECT_GE(t.min().item<double>(), 0.0);
    EXPECT_LT(max_abs(t.sum(-1) - 1), dt == torch::kFloat32 ? 1e-5 : 1e-12);
  }
}

TEST(ValueLoss, C51ProjectionOntoExactAtoms) {
  // Unit-spaced atoms and r = 1, gamma = 1: every atom lands exactly on its upper neighbour
  // (lower == upper index), and the top two collapse onto the clamped end.
  const auto atoms = torch::linspace(-10, 10, 21, torch::kFloat64);
  const auto p = torch::softmax(torch::randn({1, 21}, torch::kFloat64), -1);
  const auto t = value::c51_project(p, torch::tensor({1.0}, torch::kFloat64),
                                    torch::tensor({1.0}, torch::kFloat64), atoms)[0];
  auto expected = torch::zeros({21}, torch::kFloat64);
  expected.narrow(0, 1, 20).copy_(p[0].narrow(0, 0, 20));
  expected[20] += p[0][20];
  EXPECT_LT(max_abs(t - expected), 1e-15);
}

TEST(ValueLoss, C51TerminalPutsAllMassAtTheClampedReward) {
  const auto atoms = torch::linspace(-10, 10, 21, torch::kFloat64);
  const auto p = torch::softmax(torch::randn({4, 21}, torch::kFloat64), -1);
  const auto t = value::c51_project(p, torch::tensor({3.0, 50.0, -50.0, 2.5}, torch::kFloat64),
                                    torch::zeros({4}, torch::kFloat64), atoms);
  // Row sums equal sum(p), which is 1 only to rounding.
  EXPECT_NEAR(t[0][13].item<double>(), 1.0, 1e-12);  // atom 13 is 3.0
  EXPECT_NEAR(t[1][20].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(t[2][0].item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(t[3][12].item<double>(), 0.5, 1e-12);  // 2.5 halfway between atoms 2 and 3
  EXPECT_NEAR(t[3][13].item<double>(), 0.5, 1e-12);
}

TEST(ValueLoss, C51ProjectionMatchesAHandComputedCase) {
  // Atoms {0, 1, 2}, next-state probabilities {0.2, 0.5, 0.3}.
  // Row 0: r = 0.5, d = 0.5 -> Tz = {0.5, 1.0, 1.5}:
  //   0.2 at 0.5 -> 0.1 + 0.1 on atoms 0, 1; 0.5 at 1.0 -> atom 1; 0.3 at 1.5 -> 0.15 + 0.15.
  //   = {0.1, 0.75, 0.15}
  // Row 1: r = -1, d = 1 -> Tz = {-1, 0, 1}, clamped {0, 0, 1} = {0.7, 0.3, 0}
  // Row 2: r = 1.75, d = 0.25 -> Tz = {1.75, 2, 2.25}, clamped {1.75, 2, 2}:
  //   0.2 at 1.75 -> 0.05 + 0.15 on atoms 1, 2; the rest on atom 2 = {0, 0.05, 0.95}
  const auto atoms = torch::tensor({0.0, 1.0, 2.0}, torch::kFloat64);
  const auto p = torch::tensor({0.2, 0.5, 0.3}, torch::kFloat64).repeat({3, 1});
  const auto t = value::c51_project(p, torch::tensor({0.5, -1.0, 1.75}, torch::kFloat64),
                                    torch::tensor({0.5, 1.0, 0.25}, torch::kFloat64), atoms);
  const auto expected =
      torch::tensor({0.1, 0.75, 0.15, 0.7, 0.3, 0.0, 0.0, 0.05, 0.95}, torch::kFloat64)
          .reshape({3, 3});
  EXPECT_LT(max_abs(t - expected), 1e-12) << t;
}

TEST(ValueLoss, ProjectionMatchesBruteForceOnUnevenAtoms) {
  // Uneven atoms (the guessed-then-walked search must still find the exact neighbours), points
  // on atoms, between them and beyond both ends.
  torch::manual_seed(11);
  const auto atoms = std::get<0>(torch::sort(torch::rand({17}, torch::kFloat64) * 20 - 10));
  const int64_t m = atoms.size(0);
  auto x = torch::cat({torch::rand({200}, torch::kFloat64) * 30 - 15, atoms.clone()});
  const auto p = torch::softmax(torch::randn({x.size(0), m}, torch::kFloat64), -1);
  const auto r = x;  // c51 with discount 0.5: Tz = x + 0.5 z
  const auto d = torch::full({x.size(0)}, 0.5, torch::kFloat64);
  const auto t = value::c51_project(p, r, d, atoms);
  const auto two_hot = value::two_hot_targets(x, atoms);
  auto expect_c51 = torch::zeros_like(p);
  auto expect_two_hot = torch::zeros({x.size(0), m}, torch::kFloat64);
  const auto z = atoms.accessor<double, 1>();
  auto split = [&](double v, double mass, torch::TensorAccessor<double, 1> out) {
    const double vc = std::min(std::max(v, z[0]), z[m - 1]);
    int64_t lo = 0;
    for (int64_t i = 0; i < m; ++i)
      if (z[i] <= vc) lo = i;
    lo = std::min<int64_t>(lo, m - 2);
    const double frac = (vc - z[lo]) / (z[lo + 1] - z[lo]);
    out[lo] += mass * (1 - frac);
    out[lo + 1] += mass * frac;
  };
  auto ec = expect_c51.accessor<double, 2>();
  auto et = expect_two_hot.accessor<double, 2>();
  const auto pa = p.accessor<double, 2>();
  const auto xa = x.accessor<double, 1>();
  for (int64_t b = 0; b < x.size(0); ++b) {
    split(xa[b], 1.0, et[b]);
    for (int64_t j = 0; j < m; ++j) split(xa[b] + 0.5 * z[j], pa[b][j], ec[b]);
  }
  EXPECT_LT(max_abs(t - expect_c51), 1e-12);
  EXPECT_LT(max_abs(two_hot - expect_two_hot), 1e-12);
}

// ---- MuZero transform ----

TEST(ValueLoss, MuZeroTransformRoundTrips) {
  EXPECT_NEAR(value::muzero_h(torch::tensor(3.0)).item<double>(), 1.003, 1e-6);
  EXPECT_NEAR(value::muzero_h(torch::tensor(-8.0)).item<double>(), -2.008, 1e-6);
  const auto mag = torch::logspace(-6, 8, 1001, 10, torch::kFloat64);
  const auto x64 = torch::cat({-mag, torch::zeros({1}, torch::kFloat64), mag});
  for (auto dt : kFloatTypes) {
    const auto x = x64.to(dt);
    for (double eps : {1e-3, 0.0}) {
      const auto back = value::muzero_h_inverse(value::muzero_h(x, eps), eps);
      const auto rel = ((back - x).abs() / x.abs().clamp_min(1e-30)).max().item<double>();
      EXPECT_LT(rel, dt == torch::kFloat64 ? 1e-12 : 1e-5) << dt << " eps " << eps;
      EXPECT_EQ(back[1001].item<double>(), 0.0);
    }
  }
}

// ---- the losses ----

ValueLossConfig config_for(const std::string& loss) {
  ValueLossConfig cfg;
  cfg.loss = loss;
  cfg.num_bins = 51;
  return cfg;
}

// chosen_loss is gathering each row's chosen head and taking the loss, for every loss; scalar
// losses and the categorical cross-entropies take their one-node paths on the CPU (Huber's linear
// part and value_transform included).
// A loss of one config, a batch of heads [B, A, K] twice (the path under test and the reference
// path each get their own gradient), actions and targets.
struct ChosenCase {
  std::unique_ptr<value::ValueLoss> l;
  int64_t K;
  torch::Tensor head, reference, actions, y;
  ChosenCase(const std::string& name, const std::string& transform, int64_t B, int64_t A) {
    auto cfg = config_for(name);
    cfg.value_transform = transform;
    l = value::make_value_loss(cfg);
    K = l->head_outputs();
    head = (3 * torch::randn({B, A, K})).requires_grad_();
    reference = head.detach().clone().requires_grad_();
    actions = torch::randint(0, A, {B}, torch::kLong);
    y = 4 * torch::randn({B});  // |q - y| > 1 on many rows: Huber's linear part
  }
};

TEST(ValueLoss, ChosenLossIsGatherThenLoss) {
  torch::manual_seed(4);
  const int64_t B = 9, A = 4;
  for (const std::string name :
       {"mse", "huber", "two_hot", "hl_gauss", "one_hot", "c51", "mse_on_expectation"})
    for (const std::string transform : {"none", "muzero", "symlog"}) {
      const ChosenCase t(name, transform, B, A);
      const auto& [l, K, head, reference, actions, y] = t;
      const auto fast = l->chosen_loss(head, actions, y);
      const auto slow =
          l->loss(reference.gather(1, actions.view({B, 1, 1}).expand({B, 1, K})).squeeze(1), y);
      if (name != "mse_on_expectation") {
        ASSERT_TRUE(fast.grad_fn()) << name;
        EXPECT_NE(fast.grad_fn()->name().find(K == 1 ? "ChosenScalarLoss" : "ChosenCrossEntropy"),
                  std::string::npos)
            << name;
      }
      EXPECT_NEAR(fast.item<double>(), slow.item<double>(), 1e-5 * (1 + slow.abs().item<double>()))
          << name << " transform " << transform;
      fast.backward();
      slow.backward();
      EXPECT_TRUE(torch::allclose(head.grad(), reference.grad(), 1e-5, 1e-6))
          << name << " transform " << transform << "\n"
          << head.grad() << reference.grad();
      EXPECT_GT(head.grad().abs().sum().item<double>(), 0.0) << name;
    }
  // An action outside the head is an error, not a read past the row.
  auto huber = value::make_value_loss(config_for("huber"));
  EXPECT_THROW(huber->chosen_loss(torch::zeros({2, 3, 1}), torch::tensor({0, 3}, torch::kLong),
                                  torch::zeros({2})),
               c10::Error);
  // So is a target or action list of another length than the batch.
  EXPECT_THROW(huber->chosen_loss(torch::zeros({2, 3, 1}), torch::tensor({0, 1}, torch::kLong),
                                  torch::zeros({1})),
               c10::Error);
  EXPECT_THROW(huber->chosen_loss(torch::zeros({2, 3, 1}), torch::tensor({0}, torch::kLong),
                                  torch::zeros({2})),
               c10::Error);
  auto hl_gauss = value::make_value_loss(config_for("hl_gauss"));
  for (const auto& [actions, y] : std::vector<std::pair<torch::Tensor, torch::Tensor>>{
           {torch::tensor({0, 3}, torch::kLong), torch::zeros({2})},
           {torch::tensor({0, 1}, torch::kLong), torch::zeros({1})},
           {torch::tensor({0}, torch::kLong), torch::zeros({2})}})
    EXPECT_THROW(hl_gauss->chosen_loss(torch::zeros({2, 3, 51}), actions, y), c10::Error);
}

TEST(ValueLoss, ChosenRowsIsGatherThenPerSample) {
  torch::manual_seed(5);
  const int64_t B = 7, A = 3;
  for (const std::string name :
       {"mse", "huber", "two_hot", "hl_gauss", "one_hot", "c51", "mse_on_expectation"})
    for (const std::string transform : {"none", "symlog"}) {
      const ChosenCase t(name, transform, B, A);
      const auto& [l, K, head, reference, actions, y] = t;
      const auto rows = l->chosen_rows(head, actions, y);
      const auto slow = l->per_sample(
          reference.gather(1, actions.view({B, 1, 1}).expand({B, 1, K})).squeeze(1), y);
      ASSERT_EQ(rows.sizes(), slow.sizes()) << name;
      if (l->categorical() && name != "mse_on_expectation") {
        ASSERT_TRUE(rows.grad_fn()) << name;
        EXPECT_NE(rows.grad_fn()->name().find("ChosenCrossEntropy"), std::string::npos) << name;
      }
      EXPECT_TRUE(torch::allclose(rows, slow.to(rows.scalar_type()), 1e-5, 1e-6))
          << name << " transform " << transform << "\n"
          << rows << slow;
      // Prioritised replay's weights: each row's gradient scaled by its own weight.
      const auto w = torch::rand({B}) + 0.5;
      (rows * w).mean().backward();
      (slow * w).mean().backward();
      EXPECT_TRUE(torch::allclose(head.grad(), reference.grad(), 1e-5, 1e-6))
          << name << " transform " << transform;
      EXPECT_GT(head.grad().abs().sum().item<double>(), 0.0) << name;
    }
  auto two_hot = value::make_value_loss(config_for("two_hot"));
  EXPECT_THROW(two_hot->chosen_rows(torch::zeros({2, 3, 51}), torch::tensor({0, -1}, torch::kLong),
                                    torch::zeros({2})),
               c10::Error);
}

TEST(ValueLoss, HeadOutputsAndCategorical) {
  for (const std::string name : {"mse", "huber"}) {
    auto l = value::make_value_loss(config_for(name));
    EXPECT_EQ(l->head_outputs(), 1) << name;
    EXPECT_FALSE(l->categorical()) << name;
  }
  for (const std::string name : {"two_hot", "hl_gauss", "c51", "mse_on_expectation", "one_hot"}) {
    auto l = value::make_value_loss(config_for(name));
    EXPECT_EQ(l->head_outputs(), 51) << name;
    EXPECT_TRUE(l->categorical()) << name;
  }
  const auto names = value::value_loss_names();
  EXPECT_EQ(std::set<std::string>(names.begin(), names.end()),
            (std::set<std::string>{"mse", "huber", "two_hot", "hl_gauss", "c51",
                                   "mse_on_expectation", "one_hot"}));
}

// one_hot: the bin that holds y, by hand on [0, 1] with 4 bins (edges 0, .25, .5, .75, 1); an
// inner edge belongs to the bin above it; outside the support, the end bins.
TEST(ValueLoss, OneHotPicksTheBinThatHoldsTheTarget) {
  const auto edges = value::bin_edges(0, 1, 4, torch::kFloat64);
  const auto y = torch::tensor({0.1, 0.25, 0.49, 0.999, 1.0, -3.0, 7.0}, torch::kFloat64);
  const auto p = value::one_hot_targets(y, edges);
  EXPECT_TRUE(torch::equal(p.argmax(-1), torch::tensor({0, 1, 1, 3, 3, 0, 3}, torch::kLong)));
  EXPECT_TRUE(torch::equal(p.sum(-1), torch::ones({7}, torch::kFloat64)));
  EXPECT_EQ(p.max().item<double>(), 1.0);
  // The loss is the cross-entropy at that bin.
  ValueLossConfig cfg;
  cfg.loss = "one_hot";
  cfg.num_bins = 4;
  cfg.v_min = 0;
  cfg.v_max = 1;
  torch::manual_seed(5);
  const auto logits = torch::randn({7, 4}, torch::kFloat64);
  const auto want = -torch::log_softmax(logits, -1).gather(1, p.argmax(-1).unsqueeze(1)).squeeze(1);
  EXPECT_TRUE(torch::allclose(value::make_value_loss(cfg)->per_sample(logits, y), want));
}

TEST(ValueLoss, LossesMatchTheirDefinitions) {
  const auto y = torch::tensor({3.0f, 0.5f});
  const auto v = torch::zeros({2, 1});
  EXPECT_NEAR(value::make_value_loss(config_for("mse"))->loss(v, y).item<double>(), (9 + 0.25) / 2,
              1e-6);
  // Huber, delta 1: 0.5 x^2 inside, delta (|x| - delta / 2) outside.
  EXPECT_NEAR(value::make_value_loss(config_for("huber"))->loss(v, y).item<double>(),
              (2.5 + 0.125) / 2, 1e-6);

  torch::manual_seed(4);
  const auto logits = torch::randn({2, 51});
  const auto edges = value::bin_edges(-10, 10, 51, torch::kFloat32);
  const auto c = value::bin_centres(-10, 10, 51, torch::kFloat32);
  const auto ce = [&](const torch::Tensor& p) {
    return -(p * torch::log_softmax(logits, -1)).sum(-1).mean().item<double>();
  };
  EXPECT_NEAR(value::make_value_loss(config_for("hl_gauss"))->loss(logits, y).item<double>(),
              ce(value::hl_gauss_targets(y, edges, 0.75 * 20 / 51)), 1e-5);
  EXPECT_NEAR(value::make_value_loss(config_for("two_hot"))->loss(logits, y).item<double>(),
              ce(value::two_hot_targets(y, c)), 1e-5);
  EXPECT_NEAR(value::make_value_loss(config_for("c51"))->loss(logits, y).item<double>(),
              ce(value::two_hot_targets(y, torch::linspace(-10, 10, 51))), 1e-5);
  const auto e = mean_over(torch::softmax(logits, -1), c);
  EXPECT_NEAR(
      value::make_value_loss(config_for("mse_on_expectation"))->loss(logits, y).item<double>(),
      (e - y).pow(2).mean().item<double>(), 1e-5);
}

TEST(ValueLoss, ReadBackShapesDtypesAndNoGradient) {
  auto l = value::make_value_loss(config_for("hl_gauss"));
  l->to(torch::kCPU);
  // All mass on bin k reads back as centre k; batch dims pass through; bfloat16 reads as float32.
  auto logits = torch::full({2, 3, 51}, -1e4);
  logits.select(-1, 40).fill_(0);
  const auto v = l->value(logits.to(torch::kBFloat16).requires_grad_());
  EXPECT_EQ(v.sizes(), torch::IntArrayRef({2, 3}));
  EXPECT_EQ(v.scalar_type(), torch::kFloat32);
  EXPECT_FALSE(v.requires_grad());
  EXPECT_NEAR(v[1][2].item<double>(),
              value::bin_centres(-10, 10, 51, torch::kFloat64)[40].item<double>(), 1e-5);
  // float64 targets on a float32 head: the loss is computed in float64 and still backpropagates.
  auto head = torch::zeros({4, 51}, torch::requires_grad());
  const auto loss = l->loss(head, torch::tensor({1.0, 2.0, 3.0, 4.0}, torch::kFloat64));
  EXPECT_EQ(loss.scalar_type(), torch::kFloat64);
  loss.backward();
  EXPECT_TRUE(head.grad().defined());
  auto s = value::make_value_loss(config_for("mse"));
  EXPECT_EQ(s->value(torch::ones({5, 1})).sizes(), torch::IntArrayRef({5}));
  EXPECT_THROW(s->loss(torch::ones({5}), torch::ones({5})), c10::Error);  // needs [..., 1]
}

// Fits a free table of head outputs to fixed targets with Adam: the loss must fall and the
// read-back must land near the targets (compared in h-space when the transform is on, since that
// is the space the head fits in).
void expect_fits(ValueLossConfig cfg, double lo, double hi, double tol, double lr = 0.1) {
  torch::manual_seed(5);
  auto l = value::make_value_loss(cfg);
  const auto y = torch::rand({64}) * (hi - lo) + lo;
  auto head = torch::zeros({64, l->head_outputs()}, torch::requires_grad());
  torch::optim::Adam opt({head}, torch::optim::AdamOptions(lr));
  const double initial = l->loss(head, y).item<double>();
  double last = initial;
  for (int step = 0; step < 200; ++step) {
    opt.zero_grad();
    auto loss = l->loss(head, y);
    loss.backward();
    opt.step();
    last = loss.item<double>();
  }
  EXPECT_LT(last, initial) << cfg.loss;
  const auto space = [&](const torch::Tensor& v) {
    const std::string t = cfg.transform();
    return t == "muzero" ? value::muzero_h(v) : t == "symlog" ? value::symlog(v) : v;
  };
  const double err = max_abs(space(l->value(head)) - space(y));
  EXPECT_LT(err, tol) << cfg.loss << " read-back error " << err;
}

// Support [-10, 10] with 51 bins (w ~ 0.39), targets well inside it. Scalar heads converge to
// float precision; cross-entropy heads still hold some mass on neighbouring bins after 200 steps
// (read-back errors ~0.12 w seen), so they get a quarter of a bin.
constexpr double kQuarterBin = 0.25 * 20.0 / 51;
TEST(ValueLoss, MseFits) {
  expect_fits(config_for("mse"), -6, 6, 0.01);
}
TEST(ValueLoss, HuberFits) {
  expect_fits(config_for("huber"), -6, 6, 0.01);
}
TEST(ValueLoss, TwoHotFits) {
  expect_fits(config_for("two_hot"), -6, 6, kQuarterBin);
}
TEST(ValueLoss, HlGaussFits) {
  expect_fits(config_for("hl_gauss"), -6, 6, kQuarterBin);
}
TEST(ValueLoss, C51Fits) {
  expect_fits(config_for("c51"), -6, 6, kQuarterBin);
}
TEST(ValueLoss, MseOnExpectationFits) {
  expect_fits(config_for("mse_on_expectation"), -6, 6, 0.01);
}

TEST(ValueLoss, ValueTransformFitsWideRangeTargets) {
  // Returns up to 300 on a support bounded in return units by +-1000: muzero's h(1000) = 31.6
  // (bins 1.24 wide in h), symlog(1000) = 6.91 (0.27); errors are checked in the squashed space,
  // a quarter of a bin for the categorical head. A higher learning rate so that Adam can travel
  // that far in 200 steps.
  for (const std::string transform : {"muzero", "symlog", "true"})
    for (const std::string name : {"hl_gauss", "mse"}) {
      auto cfg = config_for(name);
      cfg.v_min = -1000;
      cfg.v_max = 1000;
      cfg.value_transform = transform;
      const double top = cfg.transform() == "symlog" ? std::log1p(1000.0) : 31.6;
      expect_fits(cfg, -300, 300, name == "mse" ? 0.01 : 0.25 * 2 * top / 51, /*lr=*/0.3);
    }
}

TEST(ValueLoss, SymlogRoundTripsAndTheOldSwitchSpellingsStillRead) {
  EXPECT_NEAR(value::symlog(torch::tensor(std::exp(2.0) - 1)).item<double>(), 2.0, 1e-12);
  EXPECT_NEAR(value::symlog(torch::tensor(-(std::exp(3.0) - 1))).item<double>(), -3.0, 1e-12);
  const auto mag = torch::logspace(-6, 8, 1001, 10, torch::kFloat64);
  const auto x64 = torch::cat({-mag, torch::zeros({1}, torch::kFloat64), mag});
  for (auto dt : kFloatTypes) {
    const auto x = x64.to(dt);
    const auto back = value::symexp(value::symlog(x));
    const auto rel = ((back - x).abs() / x.abs().clamp_min(1e-30)).max().item<double>();
    EXPECT_LT(rel, dt == torch::kFloat64 ? 1e-12 : 1e-5) << dt;
    EXPECT_EQ(back[1001].item<double>(), 0.0);
  }
  ValueLossConfig c;
  c.value_transform = "true";
  EXPECT_EQ(c.transform(), "muzero");
  c.value_transform = "false";
  EXPECT_EQ(c.transform(), "none");
  c.value_transform = "symlog";
  EXPECT_EQ(c.transform(), "symlog");
}

// ---- configuration ----

TEST(ValueLoss, BadConfigsThrowInputError) {
  const auto bad = [](auto edit) {
    auto cfg = config_for("hl_gauss");
    edit(cfg);
    return cfg;
  };
  EXPECT_THROW(value::make_value_loss(bad([](auto& c) { c.loss = "hl_gaus"; })), InputError);
  EXPECT_THROW(value::make_value_loss(bad([](auto& c) { c.v_min = c.v_max; })), InputError);
  EXPECT_THROW(value::make_value_loss(bad([](auto& c) { c.v_min = 20; })), InputError);
  EXPECT_THROW(value::make_value_loss(bad([](auto& c) { c.v_min = NAN; })), InputError);
  EXPECT_THROW(value::make_value_loss(bad([](auto& c) { c.num_bins = 1; })), InputError);
  EXPECT_THROW(value::make_value_loss(bad([](auto& c) { c.sigma_ratio = 0; })), InputError);
  EXPECT_THROW(value::make_value_loss(bad([](auto& c) { c.huber_delta = -1; })), InputError);
  EXPECT_THROW(value::make_value_loss(bad([](auto& c) { c.value_transform = "log"; })), InputError);
  try {
    value::make_value_loss(bad([](auto& c) { c.loss = "hl_gaus"; }));
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean hl_gauss"), std::string::npos) << e.what();
  }
}

// Collects each key's name and the choices its Spec allows.
struct SpecCollector {
  std::map<std::string, config::Spec> specs;
  template <class T>
  void operator()(const char* key, T&, const char* doc, const config::Spec& spec = {}) {
    EXPECT_GT(std::string(doc).size(), 10u) << key;
    specs[key] = spec;
  }
};

TEST(ValueLoss, ConfigDeclaresEveryKeyWithItsChoices) {
  ValueLossConfig cfg;
  SpecCollector c;
  cfg.visit(c);
  std::set<std::string> keys;
  for (const auto& kv : c.specs) keys.insert(kv.first);
  EXPECT_EQ(keys, (std::set<std::string>{"loss", "num_bins", "v_min", "v_max", "sigma_ratio",
                                         "huber_delta", "value_transform", "support", "support_k",
                                         "support_rate"}));
  EXPECT_EQ(c.specs["support"].choices, (std::vector<std::string>{"fixed", "auto", "running"}));
  EXPECT_EQ(c.specs["loss"].choices, value::value_loss_names());
  EXPECT_EQ(c.specs["num_bins"].min, 2);
}

}  // namespace
}  // namespace stoch
