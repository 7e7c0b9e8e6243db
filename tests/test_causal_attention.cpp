#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/Parallel.h>

#include <cmath>
#include <tuple>

#include "core/strings.h"
#include "isa_test.h"
#include "models/causal_attention.h"
#include "models/gpt.h"

namespace stoch {
namespace {

// The definition, in float64: softmax(q k^T / sqrt(D)) v with position j > i masked out.
torch::Tensor reference_attention(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v) {
  const int64_t T = q.size(2);
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(3)));
  auto mask = torch::ones({T, T}, torch::kBool).triu(1);
  scores = scores.masked_fill(mask, -std::numeric_limits<double>::infinity());
  return torch::matmul(torch::softmax(scores, -1), v);
}

struct Grads {
  torch::Tensor out, q, k, v;
};

// Output and input gradients of sum(out * weights), in float64 (computed in the inputs' dtype).
template <class Attention>
Grads run(const Attention& attention, const torch::Tensor& q, const torch::Tensor& k,
          const torch::Tensor& v, const torch::Tensor& weights) {
  auto qq = q.detach().requires_grad_(true), kk = k.detach().requires_grad_(true),
       vv = v.detach().requires_grad_(true);
  auto out = attention(qq, kk, vv);
  (out * weights.to(out.scalar_type())).sum().backward();
  return {out.detach().to(torch::kDouble), qq.grad().to(torch::kDouble),
          kk.grad().to(torch::kDouble), vv.grad().to(torch::kDouble)};
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

using Shape = std::tuple<int64_t, int64_t, int64_t, int64_t>;

// (B, H, T, D) x clone: head widths 16 to 128 (one to eight 16-float blocks), contexts that are
// and are not multiples of the column blocks and of each clone's row tiles (4, 6 and 8 rows).
class HostAttention : public ::testing::TestWithParam<std::tuple<Shape, CpuIsa>> {};

std::string test_name(const ::testing::TestParamInfo<std::tuple<Shape, CpuIsa>>& info) {
  const Shape& shape = std::get<0>(info.param);
  return stoch::str("T", std::get<2>(shape), "_D", std::get<3>(shape), "_",
                    cpu_isa_name(std::get<1>(info.param)));
}

TEST_P(HostAttention, MatchesTheDefinitionForwardAndBackward) {
  const auto [shape, isa] = GetParam();
  STOCH_USE_ISA_OR_SKIP(isa);
  const auto [B, H, T, D] = shape;
  torch::manual_seed(T * 131 + D);
  // Queries scaled up so that some rows' softmax is sharp and some flat.
  const auto q = 3.0 * torch::randn({B, H, T, D}), k = torch::randn({B, H, T, D}),
             v = torch::randn({B, H, T, D}), w = torch::randn({B, H, T, D});
  const auto want =
      run(reference_attention, q.to(torch::kDouble), k.to(torch::kDouble), v.to(torch::kDouble), w);
  const auto got = run(models::causal_attention_host, q, k, v, w);
  EXPECT_LT(max_abs_diff(got.out, want.out), 2e-5);
  EXPECT_LT(max_abs_diff(got.q, want.q), 5e-5);
  EXPECT_LT(max_abs_diff(got.k, want.k), 5e-5);
  EXPECT_LT(max_abs_diff(got.v, want.v), 5e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, HostAttention,
    ::testing::Combine(::testing::Values(Shape{2, 2, 1, 32}, Shape{1, 2, 16, 16},
                                         Shape{2, 3, 37, 32}, Shape{1, 2, 128, 32},
                                         Shape{1, 1, 50, 48}, Shape{1, 2, 70, 64},
                                         Shape{1, 1, 23, 80}, Shape{1, 1, 33, 128},
                                         Shape{1, 1, 64, 96}, Shape{1, 1, 30, 112}),
                       ::testing::ValuesIn(test::kEveryIsa)),
    test_name);

TEST(HostAttentionLayout, ReadsHeadsInPlaceAndAgreesWithSdpa) {
  // q, k, v as the GPT makes them: views into one [B, T, 3 d] projection, rows 3 d apart.
  torch::manual_seed(7);
  const int64_t B = 2, T = 40, H = 4, D = 32, d = H * D;
  const auto qkv = torch::randn({B, T, 3 * d});
  auto heads = [&](int part) {
    return qkv.slice(2, part * d, (part + 1) * d).view({B, T, H, D}).transpose(1, 2);
  };
  const auto w = torch::randn({B, H, T, D});
  auto sdpa = [](const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
    return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
  };
  const auto want = run(sdpa, heads(0), heads(1), heads(2), w);
  const auto got = run(models::causal_attention_host, heads(0), heads(1), heads(2), w);
  EXPECT_LT(max_abs_diff(got.out, want.out), 1e-5);
  EXPECT_LT(max_abs_diff(got.q, want.q), 1e-5);
  EXPECT_LT(max_abs_diff(got.k, want.k), 1e-5);
  EXPECT_LT(max_abs_diff(got.v, want.v), 1e-5);
  // Heads merge back into [B, T, d] without a copy.
  const auto out = models::causal_attention_host(heads(0), heads(1), heads(2));
  EXPECT_TRUE(out.transpose(1, 2).is_contiguous());
}

TEST(HostAttentionLayout, SameBitsWithAnyThreadCount) {
  torch::manual_seed(8);
  const auto q = torch::randn({3, 3, 45, 32}), k = torch::randn({3, 3, 45, 32}),
             v = torch::randn({3, 3, 45, 32}), w = torch::randn({3, 3, 45, 32});
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = run(models::causal_attention_host, q, k, v, w);
  at::set_num_threads(2);
  const auto two = run(models::causal_attention_host, q, k, v, w);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one.out, two.out));
  EXPECT_TRUE(torch::equal(one.q, two.q));
  EXPECT_TRUE(torch::equal(one.k, two.k));
  EXPECT_TRUE(torch::equal(one.v, two.v));
}

TEST(HostAttentionLayout, RunsWithoutAutograd) {
  // Sampling and evaluation call it under NoGradGuard or InferenceMode: nothing to save.
  torch::manual_seed(11);
  const auto q = torch::randn({2, 2, 20, 16}), k = torch::randn({2, 2, 20, 16}),
             v = torch::randn({2, 2, 20, 16});
  const auto want = models::causal_attention_host(q, k, v);
  {
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(torch::equal(models::causal_attention_host(q, k, v), want));
  }
  c10::InferenceMode inference;
  const auto qi = q.clone(), ki = k.clone(), vi = v.clone();
  EXPECT_TRUE(torch::equal(models::causal_attention_host(qi, ki, vi), want));
}

TEST(HostAttentionLayout, TakesOnlyWhatItComputes) {
  EXPECT_TRUE(models::causal_attention_host_supported(torch::zeros({1, 1, 8, 32})));
  EXPECT_FALSE(models::causal_attention_host_supported(torch::zeros({1, 1, 8, 8})));
  EXPECT_FALSE(models::causal_attention_host_supported(torch::zeros({1, 1, 8, 144})));
  EXPECT_FALSE(
      models::causal_attention_host_supported(torch::zeros({1, 1, 8, 32}, torch::kDouble)));
  EXPECT_FALSE(models::causal_attention_host_supported(
      torch::zeros({1, 1, models::kHostAttentionMaxContext + 1, 16})));
}

TEST(HostAttentionLayout, GptWithAutoAttentionMatchesPlain) {
  models::LmConfig c;
  c.vocab_size = 13;
  c.context = 24;
  c.n_layer = 2;
  c.n_head = 2;
  c.d_model = 64;
  c.positions = "rotary";
  auto loss_and_grads = [&](const std::string& attention) {
    c.attention = attention;
    torch::manual_seed(9);
    models::Gpt gpt(c);
    torch::manual_seed(10);
    const auto x = torch::randint(0, 13, {3, 24}, torch::kLong);
    const auto loss = torch::nn::functional::cross_entropy(gpt->forward(x).view({-1, 13}),
                                                           x.roll(-1, 1).view({-1}));
    loss.backward();
    std::vector<torch::Tensor> out{loss.detach()};
    for (const auto& p : gpt->parameters()) out.push_back(p.grad().clone());
    return out;
  };
  const auto host = loss_and_grads("auto"), plain = loss_and_grads("plain");
  ASSERT_EQ(host.size(), plain.size());
  for (size_t i = 0; i < host.size(); ++i)
    EXPECT_TRUE(torch::allclose(host[i], plain[i], 1e-4, 1e-6)) << "tensor " << i;
}

// `model.attention: auto` follows the measured table: on the portable clone the GPT computes
// exactly what SDPA computes, on the AVX2 and AVX-512 clones exactly what stoch's kernels do
// (up to the AVX2 clone's context limit), and the log line says which and why.
TEST(AttentionChoice, AutoRunsTheKernelTheTableNames) {
  models::LmConfig c;
  c.vocab_size = 11;
  c.context = 20;
  c.n_layer = 1;
  c.n_head = 2;
  c.d_model = 32;
  auto loss_with = [&](const std::string& attention) {
    c.attention = attention;
    torch::manual_seed(9);
    models::Gpt gpt(c);
    torch::manual_seed(10);
    const auto x = torch::randint(0, 11, {2, 20}, torch::kLong);
    return gpt->forward(x).detach();
  };
  for (const CpuIsa isa : cpu_isas_runnable()) {
    test::IsaCap cap(isa);
    const bool host = models::host_attention_preferred(isa, c.context);
    EXPECT_EQ(host, isa != CpuIsa::kPortable) << cpu_isa_name(isa);
    const auto want = loss_with(host ? "stoch" : "sdpa");
    EXPECT_TRUE(torch::equal(loss_with("auto"), want)) << cpu_isa_name(isa);
    // The two kernels round differently, so the comparison above can tell them apart.
    EXPECT_FALSE(torch::equal(loss_with(host ? "sdpa" : "stoch"), want)) << cpu_isa_name(isa);
    const std::string line = models::describe_attention("auto", true, false, c.context, 16);
    EXPECT_EQ(line, host ? stoch::str("attention: stoch kernels (", cpu_isa_name(isa), ")")
                         : "attention: sdpa (stoch kernels slower on this CPU: portable clone, "
                           "context 20)");
  }
  EXPECT_FALSE(models::host_attention_preferred(CpuIsa::kAvx2, 1024));
  EXPECT_TRUE(models::host_attention_preferred(CpuIsa::kAvx512, 1024));
  EXPECT_EQ(models::describe_attention("stoch", false, false, 20, 16),
            "attention: sdpa (stoch kernels take float32 on the CPU only)");
  EXPECT_EQ(models::describe_attention("stoch", true, true, 20, 16),
            stoch::str("attention: sdpa in training steps (stoch kernels have no attention "
                       "dropout), stoch kernels (",
                       cpu_isa_name(cpu_isa()), ") in evaluation and sampling"));
  // As that line says: out of training, a model with dropout computes what the kernels do.
  c.dropout = 0.3;
  const auto with_dropout = [&](const std::string& attention) {
    c.attention = attention;
    torch::manual_seed(9);
    models::Gpt gpt(c);
    gpt->eval();
    torch::manual_seed(10);
    return gpt->forward(torch::randint(0, 11, {2, 20}, torch::kLong)).detach();
  };
  EXPECT_TRUE(torch::equal(with_dropout("stoch"), [&] {
    c.dropout = 0;
    return loss_with("stoch");
  }()));
  c.dropout = 0.3;
  EXPECT_FALSE(torch::equal(with_dropout("stoch"), with_dropout("sdpa")));
  EXPECT_EQ(models::describe_attention("stoch", true, false, 20, 24),
            "attention: sdpa (stoch kernels take head widths 16, 32, ..., 128 and contexts up to "
            "1024)");
  EXPECT_EQ(models::describe_attention("sdpa", true, false, 20, 16),
            "attention: sdpa (model.attention=sdpa)");
}

}  // namespace
}  // namespace stoch
