#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "models/batched_attention.h"
#include "models/gpt.h"

namespace stoch {
namespace {

// The definition, written out: softmax over masked, scaled scores, then the weighted values.
torch::Tensor reference_attention(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v) {
  const int64_t T = q.size(2);
  auto s = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(3)));
  const auto mask = torch::ones({T, T}, torch::kBool).triu(1);
  s = s.masked_fill(mask, -std::numeric_limits<double>::infinity());
  return torch::matmul(torch::softmax(s, -1), v);
}

// q, k, v as the model makes them: strided [B, H, T, D] views of one [B, T, 3 * H * D] tensor.
std::vector<torch::Tensor> qkv_views(const torch::Tensor& qkv, int64_t H) {
  const int64_t B = qkv.size(0), T = qkv.size(1), C = qkv.size(2) / 3;
  std::vector<torch::Tensor> out;
  for (const auto& part : qkv.split(C, -1))
    out.push_back(part.view({B, T, H, C / H}).transpose(1, 2));
  return out;
}

TEST(BatchedAttention, OutputAndGradientsMatchTheDefinition) {
  torch::manual_seed(0);
  for (auto dtype : {torch::kDouble, torch::kFloat}) {
    const auto base = torch::randn({3, 9, 3 * 4 * 5}, torch::kDouble);
    const auto a = base.to(dtype, false, /*copy=*/true).requires_grad_();
    const auto b = base.clone().requires_grad_();
    auto qa = qkv_views(a, 4), qb = qkv_views(b, 4);
    const auto out = models::batched_causal_attention(qa[0], qa[1], qa[2], 0.0);
    const auto ref = reference_attention(qb[0], qb[1], qb[2]);
    const auto g = torch::randn(ref.sizes(), torch::kDouble);
    out.backward(g.to(dtype));
    ref.backward(g);
    const double tol = dtype == torch::kDouble ? 1e-12 : 1e-5;
    EXPECT_LT((out.to(torch::kDouble) - ref).abs().max().item<double>(), tol);
    EXPECT_LT((a.grad().to(torch::kDouble) - b.grad()).abs().max().item<double>(), tol);
    // Every part of the gradient is there: q, k and v each get a non-zero share.
    for (int64_t part = 0; part < 3; ++part)
      EXPECT_GT(a.grad().chunk(3, -1)[part].abs().sum().item<double>(), 0.1) << part;
  }
}

TEST(BatchedAttention, FuturePositionsGetNoWeightAndNoGradient) {
  torch::manual_seed(1);
  auto qkv = torch::randn({2, 7, 3 * 2 * 4}, torch::kDouble).requires_grad_();
  auto p = qkv_views(qkv, 2);
  const auto out = models::batched_causal_attention(p[0], p[1], p[2], 0.0);
  // The output at position 2 depends on k and v at positions <= 2 only.
  out.select(2, 2).sum().backward();
  const auto gk = qkv.grad().chunk(3, -1)[1], gv = qkv.grad().chunk(3, -1)[2];
  EXPECT_EQ(gk.slice(1, 3, 7).abs().max().item<double>(), 0.0);
  EXPECT_EQ(gv.slice(1, 3, 7).abs().max().item<double>(), 0.0);
  EXPECT_GT(gv.slice(1, 0, 3).abs().sum().item<double>(), 0.0);
}

TEST(BatchedAttention, DropoutDropsWholeProbabilitiesAndKeepsTheMean) {
  torch::manual_seed(2);
  // v = 1 everywhere: each output is the sum of the kept, rescaled probabilities of its row,
  // so it is 1 in expectation, and it differs from 1 once anything is dropped.
  const auto q = torch::randn({8, 2, 16, 4}, torch::kDouble), k = torch::randn_like(q);
  const auto v = torch::ones_like(q);
  const auto out = models::batched_causal_attention(q, k, v, 0.3);
  EXPECT_NEAR(out.mean().item<double>(), 1.0, 0.05);
  EXPECT_GT((out - 1.0).abs().max().item<double>(), 0.1);
  // Its gradient goes through the same mask: a finite-difference check on a fixed mask seed.
  const auto w = torch::rand_like(v);
  auto qg = q.clone().requires_grad_();
  torch::manual_seed(3);
  models::batched_causal_attention(qg, k, w, 0.3).sum().backward();
  const auto analytic = qg.grad()[0][0][5][1].item<double>();
  const double h = 1e-6;
  auto shifted = [&](double d) {
    auto qd = q.clone();
    qd[0][0][5][1] += d;
    torch::manual_seed(3);
    return models::batched_causal_attention(qd, k, w, 0.3).sum().item<double>();
  };
  EXPECT_NEAR(analytic, (shifted(h) - shifted(-h)) / (2 * h), 1e-6);
}

TEST(BatchedAttention, GptGivesTheSameLossAndGradientsWithEveryKernel) {
  models::GptConfig c;
  c.vocab_size = 13;
  c.context = 10;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = 8;
  c.positions = "rotary";
  const auto x = torch::randint(0, 13, {3, 11}, torch::kLong);
  std::vector<torch::Tensor> grads_ref;
  double loss_ref = 0;
  for (const std::string kernel : {"plain", "batched", "sdpa"}) {
    c.attention = kernel;
    torch::manual_seed(4);
    models::Gpt gpt(c);
    gpt->to(torch::kDouble);
    const auto logits = gpt->forward(x.slice(1, 0, 10));
    const auto loss = torch::cross_entropy_loss(logits.reshape({-1, 13}), x.slice(1, 1).flatten());
    loss.backward();
    if (kernel == "plain") {
      loss_ref = loss.item<double>();
      for (const auto& p : gpt->parameters()) grads_ref.push_back(p.grad().clone());
      continue;
    }
    EXPECT_NEAR(loss.item<double>(), loss_ref, 1e-12) << kernel;
    const auto params = gpt->parameters();
    for (size_t i = 0; i < params.size(); ++i)
      EXPECT_TRUE(torch::allclose(params[i].grad(), grads_ref[i], 1e-9, 1e-12)) << kernel << i;
  }
}

}  // namespace
}  // namespace stoch
