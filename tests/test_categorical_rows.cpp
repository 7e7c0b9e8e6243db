// The host loops over a categorical head's rows (value/categorical_rows.h) and the operators
// built on them (value/categorical_ops.h): each clone against LibTorch's softmax in float64, every
// clone giving the portable clone's bits, non-finite logits kept visible, and the one-node loss
// against gather + log_softmax with its gradient.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/strings.h"
#include "isa_test.h"
#include "value/categorical_ops.h"
#include "value/categorical_rows.h"

namespace stoch {
namespace {

class CategoricalRows : public ::testing::TestWithParam<CpuIsa> {};

// Rows of every width around the 16-float chunks, with spreads from 0.1 to 80 (exp(-80) is
// within float's range; a softmax over [-80, 80] puts all but 1e-69 of its mass on one bin).
struct Rows {
  torch::Tensor logits, support, target;
  int64_t m;
};

std::vector<Rows> cases() {
  torch::manual_seed(7);
  std::vector<Rows> out;
  for (int64_t m : {2, 3, 15, 16, 17, 51, 101})
    for (double spread : {0.1, 3.0, 80.0}) {
      const int64_t rows = 9;
      auto logits = (torch::rand({rows, m}) * 2 - 1) * spread;
      auto support = torch::linspace(-10, 10, m) + 0.01 * torch::randn({m});
      auto target = torch::rand({rows, m});
      target = target / target.sum(-1, true) * (torch::rand({rows, 1}) * 0.4 + 0.8);
      out.push_back({logits.contiguous(), support.contiguous(), target.contiguous(), m});
    }
  return out;
}

TEST_P(CategoricalRows, AgreeWithLibTorchInFloat64AndRoundAlikeInEveryClone) {
  const auto all = cases();
  std::vector<std::vector<float>> portable;
  for (int pass = 0; pass < 2; ++pass) {
    // First the portable clone's bits, then the clone under test against them.
    test::IsaCap cap(pass == 0 ? CpuIsa::kPortable : GetParam());
    if (pass == 1) {
      if (GetParam() > cpu_isa_supported())
        GTEST_SKIP() << "this CPU cannot run the " << cpu_isa_name(GetParam()) << " clone";
      if (cpu_isa() != GetParam())
        GTEST_SKIP() << "STOCH_CPU_ISA caps the kernels below " << cpu_isa_name(GetParam());
    }
    for (size_t k = 0; k < all.size(); ++k) {
      const auto& c = all[k];
      const int64_t rows = c.logits.size(0), m = c.m;
      const auto l64 = c.logits.to(torch::kDouble);
      const auto p64 = torch::softmax(l64, -1);
      std::vector<float> e(rows), s(rows * m), g(rows * m), loss(rows);
      value::expectation_rows(c.logits.data_ptr<float>(), rows, m, c.support.data_ptr<float>(),
                              e.data());
      value::softmax_rows(c.logits.data_ptr<float>(), rows, m, s.data());
      // Rows picked in another order than stored, one twice.
      std::vector<int64_t> index = {3, 0, 8, 8, 1, 2, 7, 6, 4};
      value::cross_entropy_rows(c.logits.data_ptr<float>(), index.data(), rows, m,
                                c.target.data_ptr<float>(), loss.data(), g.data());
      const auto idx = torch::tensor(index, torch::kLong);
      const auto picked = l64.index_select(0, idx);
      const auto t64 = c.target.to(torch::kDouble);
      const auto ref_e = torch::matmul(p64, c.support.to(torch::kDouble));
      const auto ref_loss = -(t64 * torch::log_softmax(picked, -1)).sum(-1);
      const auto ref_g = torch::softmax(picked, -1) * t64.sum(-1, true) - t64;
      const auto as_tensor = [](std::vector<float>& v, std::vector<int64_t> shape) {
        return torch::from_blob(v.data(), shape, torch::kFloat).to(torch::kDouble);
      };
      const std::string where = str("m ", m, ", case ", k);
      EXPECT_TRUE(torch::allclose(as_tensor(e, {rows}), ref_e, 1e-5, 1e-4)) << where;
      EXPECT_TRUE(torch::allclose(as_tensor(s, {rows, m}), p64, 1e-5, 1e-7)) << where;
      EXPECT_TRUE(torch::allclose(as_tensor(loss, {rows}), ref_loss, 1e-5, 1e-5)) << where;
      EXPECT_TRUE(torch::allclose(as_tensor(g, {rows, m}), ref_g, 1e-5, 1e-7)) << where;
      std::vector<float> bits = e;
      bits.insert(bits.end(), s.begin(), s.end());
      bits.insert(bits.end(), g.begin(), g.end());
      bits.insert(bits.end(), loss.begin(), loss.end());
      if (pass == 0) {
        portable.push_back(bits);
      } else {
        ASSERT_EQ(bits.size(), portable[k].size());
        for (size_t i = 0; i < bits.size(); ++i)
          ASSERT_EQ(bits[i], portable[k][i]) << where << ": value " << i << " rounds otherwise";
      }
    }
  }
}

TEST_P(CategoricalRows, NonFiniteLogitsGiveNaNNotAFiniteAnswer) {
  STOCH_USE_ISA_OR_SKIP(GetParam());
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const int64_t m = 19;
  std::vector<float> support(m, 1.0f), target(m, 1.0f / m);
  for (float bad : {nan, inf})
    for (int64_t at : {0, 7, 16, 18}) {
      std::vector<float> row(m, 0.5f), s(m), g(m);
      row[at] = bad;
      float e = 0, loss = 0;
      const int64_t first = 0;
      value::expectation_rows(row.data(), 1, m, support.data(), &e);
      value::softmax_rows(row.data(), 1, m, s.data());
      value::cross_entropy_rows(row.data(), &first, 1, m, target.data(), &loss, g.data());
      EXPECT_TRUE(std::isnan(e)) << bad << " at " << at;
      EXPECT_TRUE(std::isnan(s[0]) || std::isnan(s[at])) << bad << " at " << at;
      EXPECT_TRUE(std::isnan(loss)) << bad << " at " << at;
    }
  // -inf is a bin with no mass, as in LibTorch's softmax.
  std::vector<float> row(m, 0.0f), s(m);
  row[3] = -inf;
  value::softmax_rows(row.data(), 1, m, s.data());
  EXPECT_LT(s[3], 1e-30f);
  EXPECT_NEAR(s[0], 1.0 / (m - 1), 1e-7);
}

INSTANTIATE_TEST_SUITE_P(Clones, CategoricalRows, ::testing::ValuesIn(test::kEveryIsa),
                         [](const auto& info) { return test::isa_test_name(info.param); });

// The one-node loss on the CPU against gather + log_softmax in float64: value and gradient.
TEST(CategoricalOps, ChosenCrossEntropyIsGatherThenLogSoftmax) {
  torch::manual_seed(3);
  const int64_t B = 11, A = 5, m = 51;
  const auto logits = (4 * torch::randn({B, A, m})).requires_grad_();
  const auto reference = logits.detach().to(torch::kDouble).requires_grad_();
  const auto actions = torch::randint(0, A, {B}, torch::kLong);
  auto target = torch::rand({B, m});
  target = target / target.sum(-1, true);
  const auto fast = value::chosen_cross_entropy(logits, actions, target);
  ASSERT_TRUE(fast.grad_fn());
  EXPECT_NE(fast.grad_fn()->name().find("ChosenCrossEntropy"), std::string::npos);
  const auto chosen = reference.gather(1, actions.view({B, 1, 1}).expand({B, 1, m})).squeeze(1);
  const auto slow = -(target.to(torch::kDouble) * torch::log_softmax(chosen, -1)).sum(-1).mean();
  EXPECT_NEAR(fast.item<double>(), slow.item<double>(), 1e-5 * slow.item<double>());
  (3 * fast).backward();
  (3 * slow).backward();
  EXPECT_TRUE(torch::allclose(logits.grad().to(torch::kDouble), reference.grad(), 1e-5, 1e-7));
  // Per row, under weights as prioritised replay gives them.
  const auto weights = torch::rand({B});
  const auto rows_fast = value::chosen_cross_entropy_rows(logits, actions, target);
  const auto chosen_again =
      reference.gather(1, actions.view({B, 1, 1}).expand({B, 1, m})).squeeze(1);
  const auto rows_slow =
      -(target.to(torch::kDouble) * torch::log_softmax(chosen_again, -1)).sum(-1);
  EXPECT_TRUE(torch::allclose(rows_fast.to(torch::kDouble), rows_slow, 1e-5, 1e-6));
  logits.mutable_grad() = torch::Tensor();
  reference.mutable_grad() = torch::Tensor();
  (rows_fast * weights).mean().backward();
  (rows_slow * weights.to(torch::kDouble)).mean().backward();
  EXPECT_TRUE(torch::allclose(logits.grad().to(torch::kDouble), reference.grad(), 1e-5, 1e-7));
  // Float64 logits take LibTorch's operators, with the same meaning.
  const auto via_ops = value::chosen_cross_entropy(reference.detach(), actions, target);
  EXPECT_NEAR(via_ops.item<double>(), slow.item<double>(), 1e-12);
  // An action outside the head is an error, not a read past the row.
  EXPECT_THROW(value::chosen_cross_entropy(logits, torch::full({B}, A, torch::kLong), target),
               c10::Error);
  EXPECT_THROW(value::chosen_cross_entropy(logits, actions, target.narrow(1, 0, m - 1)),
               c10::Error);
  // No bins: nothing for the loops to read, and the operators' answer (an empty sum, 0).
  EXPECT_EQ(value::chosen_cross_entropy(torch::zeros({B, A, 0}), actions, torch::zeros({B, 0}))
                .item<double>(),
            0.0);
  EXPECT_THROW(value::expectation(torch::zeros({3, 0}), torch::zeros({0})), c10::Error);
  EXPECT_EQ(value::softmax_bins(torch::zeros({3, 0})).numel(), 0);
}

// bf16 heads (run.precision=bf16) take the operators, in float32: rounding the target and the
// log-softmax to bf16 made the loss move in steps of 2^-5 and floored each bin at 2^-9.
TEST(CategoricalOps, Bf16HeadsAreComputedInFloat32) {
  torch::manual_seed(4);
  const int64_t B = 6, A = 3, m = 51;
  const auto logits = (3 * torch::randn({B, A, m})).to(torch::kBFloat16).requires_grad_();
  const auto as_float = logits.detach().to(torch::kFloat).requires_grad_();
  const auto actions = torch::randint(0, A, {B}, torch::kLong);
  auto target = torch::rand({B, m}, torch::kDouble) + 1e-3;
  target = (target / target.sum(-1, true)).to(torch::kFloat);
  const auto loss = value::chosen_cross_entropy(logits, actions, target);
  EXPECT_EQ(loss.scalar_type(), torch::kFloat);
  const auto reference = value::chosen_cross_entropy(as_float, actions, target);
  EXPECT_NEAR(loss.item<double>(), reference.item<double>(), 1e-5 * reference.item<double>());
  loss.backward();
  reference.backward();
  // The gradient reaches the bf16 logits, rounded only at the last cast.
  EXPECT_TRUE(torch::allclose(logits.grad().to(torch::kFloat), as_float.grad(), 1e-2, 1e-4));
  const auto probs = value::softmax_bins(logits.detach().select(1, 0));
  EXPECT_EQ(probs.scalar_type(), torch::kFloat);
  EXPECT_TRUE(
      torch::allclose(probs, torch::softmax(as_float.detach().select(1, 0), -1), 1e-6, 1e-7));
}

TEST(CategoricalOps, ExpectationAndSoftmaxMatchLibTorchAndKeepTheGradientWhenAsked) {
  torch::manual_seed(5);
  const auto logits = 3 * torch::randn({4, 3, 21});
  const auto support = torch::linspace(-2, 5, 21);
  const auto ref =
      torch::matmul(torch::softmax(logits.to(torch::kDouble), -1), support.to(torch::kDouble));
  EXPECT_TRUE(
      torch::allclose(value::expectation(logits, support).to(torch::kDouble), ref, 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(value::softmax_bins(logits), torch::softmax(logits, -1), 1e-5, 1e-7));
  EXPECT_EQ(value::expectation(logits, support).sizes(), torch::IntArrayRef({4, 3}));
  // With a gradient to keep (mse_on_expectation trains through it) the operators run.
  const auto x = logits.clone().requires_grad_();
  const auto e = value::expectation(x, support);
  ASSERT_TRUE(e.requires_grad());
  e.sum().backward();
  EXPECT_GT(x.grad().abs().sum().item<double>(), 0.0);
}

}  // namespace
}  // namespace stoch
