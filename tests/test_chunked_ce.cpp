// The chunked unembedding + cross-entropy against full logits then cross_entropy: the same loss
// and the same gradients for hidden states and unembedding, with uneven chunks, and in a run.
#include <ATen/autocast_mode.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/chunked_ce.h"
#include "test_util.h"

namespace stoch {
namespace {

struct Result {
  torch::Tensor loss, gh, gw;
};

Result run(bool chunked, torch::ScalarType dt, bool autocast) {
  torch::manual_seed(5);
  const auto opts = torch::TensorOptions().dtype(dt);
  auto h = (torch::randn({37, 16}, opts) * 2).requires_grad_();
  auto w = torch::randn({50, 16}, opts).requires_grad_();
  const auto y = torch::randint(50, {37}, torch::kLong);
  at::autocast::set_autocast_enabled(at::kCPU, autocast);
  at::autocast::set_autocast_dtype(at::kCPU, torch::kBFloat16);
  torch::Tensor loss;
  if (chunked) {
    loss = models::chunked_cross_entropy(h, w, y, 8);
  } else {
    auto logits = torch::matmul(h, w.t());  // bf16 under autocast
    if (logits.scalar_type() != torch::kDouble) logits = logits.to(torch::kFloat);
    loss = torch::nn::functional::cross_entropy(logits, y);
  }
  at::autocast::set_autocast_enabled(at::kCPU, false);
  at::autocast::clear_cache();
  loss.backward();
  return {loss.detach(), h.grad(), w.grad()};
}

double max_rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max() /
          b.to(torch::kDouble).abs().max())
      .item<double>();
}

TEST(ChunkedCrossEntropy, MatchesFullLogitsInLossAndGradients) {
  for (auto dt : {torch::kFloat64, torch::kFloat32}) {
    const auto a = run(true, dt, false), b = run(false, dt, false);
    const double tol = dt == torch::kFloat64 ? 1e-12 : 1e-5;
    EXPECT_LT(max_rel(a.loss, b.loss), tol);
    EXPECT_LT(max_rel(a.gh, b.gh), tol);
    EXPECT_LT(max_rel(a.gw, b.gw), tol);
    EXPECT_EQ(a.gh.scalar_type(), dt);
    EXPECT_EQ(a.gw.scalar_type(), dt);
  }
}

TEST(ChunkedCrossEntropy, FollowsBf16AutocastLikeTheFullProduct) {
  const auto a = run(true, torch::kFloat32, true), b = run(false, torch::kFloat32, true);
  const auto exact = run(false, torch::kFloat32, false);
  // Both round the products' operands to bf16: far closer to each other than to float32.
  EXPECT_LT(max_rel(a.loss, b.loss), 1e-3);
  EXPECT_LT(max_rel(a.gh, b.gh), 2e-2);
  EXPECT_LT(max_rel(a.gw, b.gw), 2e-2);
  EXPECT_GT(max_rel(a.loss, exact.loss), 0.0);
}

TEST(ChunkedCrossEntropy, TrainsTheSameAsFullLogits) {
  const std::string dir = test::temp_dir("chunked-ce");
  test::write_text(dir + "/c.yaml",
                   "task: lm\n"
                   "run: {seed: 2, threads: 1}\n"
                   "data: {source: markov, vocab_size: 40, alpha: 0.5}\n"
                   "model: {context: 16, n_layer: 1, n_head: 2, d_model: 16}\n"
                   "train: {steps: 20, batch_size: 4, eval_every: 10, ckpt_every: 0}\n"
                   "log: {every: 2, console_every: 100}\n");
  const auto a = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/full");
  ASSERT_EQ(a.code, 0) << a.output;
  const auto b = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir +
                                 "/chunked --set model.ce_chunk_rows=24");
  ASSERT_EQ(b.code, 0) << b.output;
  const auto la = test::train_losses(dir + "/full"), lb = test::train_losses(dir + "/chunked");
  ASSERT_EQ(la.size(), 10u);
  ASSERT_EQ(la.size(), lb.size());
  for (const auto& [step, loss] : la) EXPECT_NEAR(lb.at(step), loss, 1e-4) << step;
  const auto va = test::metric_by_step(dir + "/full", "eval", "val/loss");
  const auto vb = test::metric_by_step(dir + "/chunked", "eval", "val/loss");
  ASSERT_EQ(va.size(), 2u);
  for (const auto& [step, v] : va) EXPECT_NEAR(vb.at(step), v, 1e-4) << step;
}

}  // namespace
}  // namespace stoch
