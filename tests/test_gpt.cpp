#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/gpt.h"

namespace stoch {
namespace {

models::LmConfig tiny(const std::string& positions = "learned",
                      const std::string& attention = "sdpa") {
  models::LmConfig c;
  c.vocab_size = 11;
  c.context = 12;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = 16;
  c.positions = positions;
  c.attention = attention;
  return c;
}

class GptPositions : public ::testing::TestWithParam<std::string> {};

TEST_P(GptPositions, FutureTokensDoNotChangePastLogits) {
  torch::manual_seed(0);
  models::Gpt gpt(tiny(GetParam()));
  gpt->eval();
  auto x = torch::randint(0, 11, {2, 12}, torch::kLong);
  const auto base = gpt->forward(x);
  for (int64_t i : {0, 5, 10}) {
    auto y = x.clone();
    y.slice(1, i + 1, 12).random_(0, 11);
    const auto out = gpt->forward(y);
    EXPECT_TRUE(torch::allclose(out.slice(1, 0, i + 1), base.slice(1, 0, i + 1), 1e-5, 1e-6))
        << "position " << i;
    if (i + 1 < 12) {
      EXPECT_FALSE(torch::allclose(out.slice(1, i + 1, 12), base.slice(1, i + 1, 12)));
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Positions, GptPositions, ::testing::Values("learned", "rotary"));

TEST(Gpt, SdpaMatchesPlainAttention) {
  torch::manual_seed(1);
  models::Gpt fused(tiny("rotary", "sdpa"));
  torch::manual_seed(1);
  models::Gpt plain(tiny("rotary", "plain"));
  fused->eval();
  plain->eval();
  auto x = torch::randint(0, 11, {3, 12}, torch::kLong);
  EXPECT_TRUE(torch::allclose(fused->forward(x), plain->forward(x), 1e-5, 1e-5));
}

TEST(Gpt, ParameterCountFromTheConfigIsTheModels) {
  // The memory estimate counts parameters before the model exists.
  for (const bool bias : {true, false})
    for (const std::string positions : {"learned", "rotary"})
      for (const int64_t mlp : {1, 4}) {
        auto c = tiny(positions);
        c.bias = bias;
        c.mlp_ratio = mlp;
        c.n_layer = 3;
        models::Gpt gpt(c);
        EXPECT_EQ(c.parameter_count(), gpt->num_parameters(/*exclude_position_embedding=*/false))
            << "bias " << bias << ", " << positions << ", mlp_ratio " << mlp;
      }
}

TEST(Gpt, TiedEmbeddingsAndResidualInit) {
  torch::manual_seed(2);
  auto c = tiny();
  c.n_layer = 8;
  c.d_model = 64;
  c.n_head = 4;
  models::Gpt gpt(c);
  // Logits are the hidden states times the token embedding: one matrix, not two.
  int64_t matrices_with_vocab_rows = 0;
  for (const auto& p : gpt->parameters())
    matrices_with_vocab_rows += p.dim() == 2 && p.size(0) == 11;
  EXPECT_EQ(matrices_with_vocab_rows, 1);
  const double wte_std = gpt->wte->weight.std().item<double>();
  const double proj_std = gpt->blocks[0]->as<models::Block>()->fc_proj->weight.std().item<double>();
  EXPECT_NEAR(wte_std, 0.02, 0.003);
  EXPECT_NEAR(proj_std, 0.02 / std::sqrt(16.0), 0.001);
}

TEST(Gpt, OverfitsOneBatch) {
  torch::manual_seed(3);
  models::Gpt gpt(tiny());
  auto x = torch::randint(0, 11, {4, 13}, torch::kLong);
  torch::optim::Adam opt(gpt->parameters(), torch::optim::AdamOptions(1e-2));
  double first = 0, last = 0;
  for (int i = 0; i < 150; ++i) {
    opt.zero_grad();
    auto logits = gpt->forward(x.slice(1, 0, 12));
    auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, 11}),
                                                     x.slice(1, 1, 13).reshape({-1}));
    loss.backward();
    opt.step();
    (i == 0 ? first : last) = loss.item<double>();
  }
  EXPECT_GT(first, 2.0);  // about log(11) at initialisation
  EXPECT_LT(last, 0.05);
}

TEST(Gpt, RejectsInconsistentShapes) {
  auto c = tiny();
  c.n_head = 3;
  EXPECT_ANY_THROW(models::Gpt{c});
}

}  // namespace
}  // namespace stoch
