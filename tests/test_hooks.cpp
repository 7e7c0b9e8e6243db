#include <gtest/gtest.h>

#include <torch/torch.h>
#include <limits>

#include "core/config_tree.h"
#include "data/markov_source.h"
#include "hooks/hook.h"
#include "hooks/rank.h"
#include "hooks/spectral.h"
#include "models/gpt.h"
#include "models/value_net.h"
#include "test_util.h"
#include "train/experiment.h"

namespace stoch {
namespace {

// The hook `yaml` (one entry of `hooks:`) declares, as a config of `task` makes it.
std::unique_ptr<hooks::Hook> make_hook(const std::string& yaml, const std::string& task = "lm") {
  auto cfg =
      train::parse_experiment(config::parse_text("task: " + task + "\nhooks:\n" + yaml, "t"));
  const auto& spec = cfg.hooks.at(0);
  return registry<hooks::HookEntry>().get(spec.name, "hooks.name").make(*spec.params);
}

// With the model's vocabulary equal to the data's (5) and padded past it (8): p is the softmax
// over every output, as val/loss takes it, and the KL is to it on the data's tokens.
TEST(EntropyHook, ExactKlAndEntropiesMatchBruteForce) {
  for (const int64_t M : {5, 8}) {
    SCOPED_TRACE(M);
    torch::manual_seed(0);
    data::MarkovSource source(5, 1, 0.5, 3);
    models::LmConfig c;
    c.vocab_size = M;
    c.context = 8;
    c.n_layer = 1;
    c.n_head = 2;
    c.d_model = 16;
    models::Gpt gpt(c);
    gpt->eval();
    const int64_t N = 6, L = 9;
    auto windows = torch::empty({N, L}, torch::kInt);
    for (int64_t n = 0; n < N; ++n)
      source.window(data::Split::kVal, n, L, windows[n].data_ptr<int32_t>());
    hooks::LmView view{gpt.get(), &source, windows.to(torch::kLong)};
    torch::NoGradGuard no_grad;
    const auto m = make_hook("  - {name: entropy, every: 1}\n")->run({0, gpt.get(), &view});

    // Brute force, one position at a time.
    const auto x = windows.to(torch::kLong).slice(1, 0, L - 1);
    const auto logits = gpt->forward(x).to(torch::kDouble);
    double kl = 0, true_h = 0, h = 0, nll = 0;
    std::vector<int64_t> count(M, 0);
    std::vector<std::pair<int64_t, double>> target_nll;  // (token, nll) at every position
    for (int64_t n = 0; n < N; ++n) {
      const auto q = source.exact_conditionals(windows[n].data_ptr<int32_t>(), L);
      for (int64_t t = 0; t < L - 1; ++t) {
        std::vector<double> p(M);
        double zmax = -1e300, sum = 0;
        for (int64_t v = 0; v < M; ++v) zmax = std::max(zmax, logits[n][t][v].item<double>());
        for (int64_t v = 0; v < M; ++v)
          sum += p[v] = std::exp(logits[n][t][v].item<double>() - zmax);
        for (int64_t v = 0; v < M; ++v) {
          p[v] /= sum;
          h -= p[v] * std::log(p[v]);
        }
        for (int v = 0; v < 5; ++v) {
          const double qv = q[(t + 1) * 5 + v];
          kl += qv * std::log(qv / p[v]);
          true_h -= qv * std::log(qv);
        }
        const int32_t y = windows[n][t + 1].item<int32_t>();
        nll -= std::log(p[y]);
        count[y] += 1;
        target_nll.emplace_back(y, -std::log(p[y]));
      }
    }
    const double positions = N * (L - 1);
    EXPECT_NEAR(m.at("diag/kl"), kl / positions, 1e-9);
    EXPECT_NEAR(m.at("diag/true_entropy"), true_h / positions, 1e-9);
    EXPECT_NEAR(m.at("diag/entropy"), h / positions, 1e-9);
    EXPECT_NEAR(m.at("diag/nll"), nll / positions, 1e-9);
    // The same number as the model's loss on these windows.
    const auto loss = torch::nn::functional::cross_entropy(
        logits.reshape({-1, M}), windows.to(torch::kLong).slice(1, 1, L).reshape({-1}));
    EXPECT_NEAR(m.at("diag/nll"), loss.item<double>(), 1e-9);
    EXPECT_NEAR(m.at("diag/calibration_gap"), (nll - h) / positions, 1e-9);
    EXPECT_NEAR(m.at("diag/align") + m.at("diag/uniformity"), m.at("diag/nll"), 1e-9);
    EXPECT_TRUE(m.count("diag/nll_pos3"));
    // Frequency buckets (4, the default) over the tokens that occur, most frequent first, ties
    // by id; padded outputs that never occur take no place (with M = 8 they emptied bucket 3).
    std::vector<int64_t> tokens;
    for (int64_t v = 0; v < M; ++v)
      if (count[v] > 0) tokens.push_back(v);
    std::stable_sort(tokens.begin(), tokens.end(),
                     [&](int64_t a, int64_t b) { return count[a] > count[b]; });
    std::vector<int64_t> bucket_of(M, -1);
    for (size_t r = 0; r < tokens.size(); ++r)
      bucket_of[tokens[r]] = static_cast<int64_t>(r) * 4 / static_cast<int64_t>(tokens.size());
    std::vector<double> sum(4, 0), num(4, 0);
    for (const auto& [y, l] : target_nll) {
      sum[bucket_of[y]] += l;
      num[bucket_of[y]] += 1;
    }
    ASSERT_GE(tokens.size(), 4u);
    for (int b = 0; b < 4; ++b)
      EXPECT_NEAR(m.at("diag/nll_freq" + std::to_string(b)), sum[b] / num[b], 1e-9) << b;
  }
}

TEST(SpectralAlignment, OneForTheTopEigenspaceNearTheNullForRandom) {
  torch::manual_seed(4);
  const int64_t N = 400, k = 24;
  // Prototypes with a decaying spectrum, centred like the hook centres them.
  auto G = torch::matmul(torch::randn({N, k}, torch::kDouble),
                         torch::diag(torch::pow(0.8, torch::arange(k, torch::kDouble))));
  G = G - G.mean(0, true);
  const auto U = std::get<0>(torch::linalg_svd(G, false));
  // H spans exactly the top-8 eigenspace of K = G G^T, in a scrambled basis.
  const auto aligned = torch::matmul(U.slice(1, 0, 8), torch::randn({8, 8}, torch::kDouble));
  const auto m = hooks::spectral_alignment(aligned, G, 1e-15, "");
  EXPECT_NEAR(m.at("kyfan_r8"), 1.0, 1e-6);
  EXPECT_NEAR(m.at("overlap_r8"), 1.0, 1e-6);
  EXPECT_NEAR(m.at("cca_r8"), 1.0, 1e-6);

  const auto random = torch::randn({N, 8}, torch::kDouble);
  const auto r = hooks::spectral_alignment(random, G, 1e-9, "");
  const auto null = hooks::spectral_alignment(
      random, G.index_select(0, torch::randperm(N, torch::kLong)), 1e-9, "");
  EXPECT_LT(r.at("kyfan_r8"), 0.2);
  EXPECT_NEAR(r.at("kyfan_r8"), null.at("kyfan_r8"), 0.1);
  EXPECT_LT(r.at("overlap_r8"), 0.2);
  EXPECT_LT(r.at("cka"), 0.2);
  EXPECT_GT(m.at("cka"), r.at("cka"));
  EXPECT_GT(m.at("k_effective_rank"), 1.0);
}

// Exact prototypes of an HMM with 8 states span 7 directions of 64: a representation holding
// that span has every canonical correlation and overlap 1, at every r, rather than the round-off
// directions past the rank diluting them.
TEST(SpectralAlignment, RankDeficientPrototypesUseOnlyTheirSpan) {
  torch::manual_seed(5);
  const int64_t N = 600, d = 64, k = 7;
  auto G =
      torch::matmul(torch::randn({N, k}, torch::kDouble), torch::randn({k, d}, torch::kDouble));
  G = G - G.mean(0, true);
  const auto UG = std::get<0>(torch::linalg_svd(G, false)).slice(1, 0, k);
  // The span of G, strongest, then 57 weaker random directions.
  const auto H = torch::cat({UG * 10.0, torch::randn({N, d - k}, torch::kDouble) * 0.01}, 1);
  const auto m = hooks::spectral_alignment(H, G, 1e-12, "");
  EXPECT_EQ(m.at("g_rank"), 7.0);
  for (const char* key : {"cca_r8", "cca_r16", "cca_r64", "overlap_r8", "overlap_r64"})
    EXPECT_NEAR(m.at(key), 1.0, 1e-6) << key;
  // A random representation correlates weakly with those seven directions, at every r.
  const auto r = hooks::spectral_alignment(torch::randn({N, d}, torch::kDouble), G, 1e-12, "");
  EXPECT_LT(r.at("cca_r64"), 0.7);
  EXPECT_NEAR(r.at("cca_r8"), r.at("cca_r64"), 1e-12);  // the same seven correlations
}

// A float32 LayerNorm output has one direction its centring removed, up to float32 round-off:
// judged with float64's epsilon it counted as a real direction, and a correlation of prototypes
// with noise entered cca and overlap. H in float32 now gives what its exact float64 values give.
TEST(SpectralAlignment, TheRankOfFloat32HiddenStatesIgnoresTheirRoundOff) {
  torch::manual_seed(6);
  const int64_t N = 800, d = 16;
  // Rows summing to zero, as LayerNorm's centring leaves them (before its affine part).
  auto exact = torch::randn({N, d}, torch::kDouble);
  exact = exact - exact.mean(1, true);
  const auto as_float = exact.to(torch::kFloat);
  const auto G = torch::randn({N, d}, torch::kDouble);
  const auto from_float = hooks::spectral_alignment(as_float, G, 1e-9, "");
  // The float32 values themselves, exactly, in float64: rank d - 1 up to float64's round-off
  // of the centring, which stays below float64's threshold.
  const auto from_double = hooks::spectral_alignment(
      as_float.to(torch::kDouble) - as_float.to(torch::kDouble).mean(1, true), G, 1e-9, "");
  for (const char* key : {"cca_r8", "cca_r16", "overlap_r16"})
    EXPECT_NEAR(from_float.at(key), from_double.at(key), 1e-6) << key;
  // Judged in float64, the float32 matrix's round-off direction would be a 16th correlation.
  const auto s = torch::linalg_svdvals(as_float.to(torch::kDouble) -
                                       as_float.to(torch::kDouble).mean(0, true));
  EXPECT_GT(s[d - 1].item<double>(),
            s[0].item<double>() * N * std::numeric_limits<double>::epsilon());
  EXPECT_LT(s[d - 1].item<double>(),
            s[0].item<double>() * N * std::numeric_limits<float>::epsilon());
  // K's spectrum: eigenvalues over N in descending order, and shares up to the whole trace.
  EXPECT_GE(from_float.at("k_eig_1"), from_float.at("k_eig_8"));
  EXPECT_NEAR(from_float.at("k_share_r16"), 1.0, 1e-12);
  EXPECT_LT(from_float.at("k_share_r8"), 1.0);
}

TEST(Hooks, ConfigErrorsNameTheEntry) {
  EXPECT_THROW(make_hook("  - {name: entropyy, every: 1}\n"), InputError);
  try {
    make_hook("  - {name: entropy, every: 1, position_bucket: 3}\n");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "unknown key hooks.0.position_bucket (did you mean hooks.0.position_buckets?)"),
              std::string::npos)
        << e.what();
  }
  auto cfg = train::parse_experiment(
      config::parse_text("task: lm\nhooks:\n  - {name: entropy, every: 7, max_windows: 3}\n", "t"));
  const std::string yaml = train::to_yaml(cfg, true);
  auto again = train::parse_experiment(config::parse_text(yaml, "printed"));
  EXPECT_EQ(train::to_yaml(again, true), yaml);
  EXPECT_EQ(again.hooks.at(0).every, 7);
}

TEST(Hooks, DoNotChangeTheTrainingTrajectory) {
  const std::string dir = test::temp_dir("hooks");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(12));
  ASSERT_EQ(test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/plain").code, 0);
  test::write_text(dir + "/h.yaml",
                   test::tiny_lm_config(12) +
                       "hooks:\n  - {name: entropy, every: 2}\n"
                       "  - {name: spectral, every: 4}\n  - {name: norms, every: 4}\n"
                       "  - {name: surplus, every: 3, train_windows: 4}\n");
  const auto r = test::run_stoch("train " + dir + "/h.yaml --run-dir " + dir + "/hooked");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(test::train_losses(dir + "/plain"), test::train_losses(dir + "/hooked"));
  EXPECT_EQ(test::metric_by_step(dir + "/hooked", "diag", "diag/kl").size(), 7u);  // and step 0
  const auto kyfan = test::metric_by_step(dir + "/hooked", "diag", "diag/spectral/kyfan_r8");
  ASSERT_EQ(kyfan.size(), 4u);  // steps 0, 4, 8, 12
  EXPECT_GE(kyfan.at(12), 0.0);
  EXPECT_LE(kyfan.at(12), 1.0 + 1e-9);
  EXPECT_EQ(test::metric_by_step(dir + "/hooked", "diag", "diag/spectral/prototypes_exact").at(12),
            1.0);
}

TEST(Hooks, LanguageModelHookOnAnotherTaskIsAnInputError) {
  const std::string dir = test::temp_dir("hooks");
  test::write_text(dir + "/c.yaml", "task: value_regression\nhooks:\n  - {name: entropy}\n");
  test::expect_train_refused(dir, "hooks: entropy needs a language model");
}

TEST(RepresentationHealth, RanksOfConstructedFeatures) {
  // Features U diag(s) V^T with chosen singular values.
  torch::manual_seed(1);
  const auto u = std::get<0>(torch::linalg_qr(torch::randn({200, 6}, torch::kDouble)));
  const auto v = std::get<0>(torch::linalg_qr(torch::randn({6, 6}, torch::kDouble)));
  const auto make = [&](std::vector<double> s) {
    return torch::matmul(u * torch::tensor(s, torch::kDouble), v.t());
  };
  EXPECT_EQ(hooks::srank(make({1, 1, 1, 1, 1, 1})), 6);
  EXPECT_NEAR(hooks::effective_rank(make({1, 1, 1, 1, 1, 1})), 6.0, 1e-9);
  // 95 + 4 of 100 reach 99%: srank 2 at delta 0.01; the tail of 1% is cut.
  EXPECT_EQ(hooks::srank(make({95, 4, 0.4, 0.3, 0.2, 0.1})), 2);
  EXPECT_EQ(hooks::srank(make({95, 4, 0.4, 0.3, 0.2, 0.1}), 0.0005), 6);
  EXPECT_EQ(hooks::srank(make({95, 4, 0.4, 0.3, 0.2, 0.1}), 0.005), 4);
  EXPECT_NEAR(hooks::effective_rank(make({1, 1, 0, 0, 0, 0})), 2.0, 1e-6);
}

// The ranks are of the head's input: a CNN torso's flattened feature map (75 numbers here), not
// its channels (3) that the dormant-unit count looks at.
TEST(RepresentationHealth, RanksAreOfTheHeadsInput) {
  torch::manual_seed(2);
  models::ValueNetConfig c;
  c.torso = "cnn";
  c.channels = {3};
  c.activation = "tanh";
  models::ValueNetImpl net(c, {4, 5, 5}, 1);
  net.eval();
  const auto x = torch::randn({64, 4, 5, 5});
  hooks::ValueView view{&net, nullptr, x, {}};
  torch::NoGradGuard no_grad;
  const auto m = make_hook("  - {name: representation, every: 1}\n", "value_regression")
                     ->run({0, &net, nullptr, &view});
  const auto features = net.features(x);
  ASSERT_EQ(features.size(1), 75);
  EXPECT_EQ(m.at("diag/srank"), static_cast<double>(hooks::srank(features)));
  EXPECT_GT(m.at("diag/srank"), 3.0);
  EXPECT_NEAR(m.at("diag/effective_rank"), hooks::effective_rank(features), 1e-9);
  EXPECT_TRUE(m.count("diag/dormant_layer0"));
}

TEST(RepresentationHealth, DormantShareCountsSilentUnits) {
  auto a = torch::rand({50, 8}, torch::kDouble) + 0.5;
  a.select(1, 2).zero_();
  a.select(1, 5).mul_(0.001);  // alive on paper, but far below tau of the layer mean
  EXPECT_DOUBLE_EQ(hooks::dormant_share(a, 0.025), 2.0 / 8.0);
  EXPECT_DOUBLE_EQ(hooks::dormant_share(a, 0.0), 1.0 / 8.0);
}

TEST(Hooks, ValueHooksLogAndLeaveTrainingAlone) {
  const std::string dir = test::temp_dir("vhooks");
  const std::string base =
      "task: value_regression\nrun: {threads: 1, device: cpu}\nmodel: {hidden: [32, 32]}\n"
      "data: {num_inputs: 64, input_shape: [4], offsets: [0], frequency: 3.0}\n"
      "value: {loss: hl_gauss, num_bins: 21, v_min: -3, v_max: 3}\n"
      "train: {steps: 12, batch_size: 16, eval_every: 6, ckpt_every: 0}\nlog: {every: 1}\n";
  test::write_text(dir + "/c.yaml", base);
  test::write_text(dir + "/h.yaml",
                   base +
                       "hooks:\n  - {name: representation, every: 4}\n"
                       "  - {name: value_head, every: 4}\n  - {name: norms, every: 4}\n");
  ASSERT_EQ(test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/plain").code, 0);
  const auto r = test::run_stoch("train " + dir + "/h.yaml --run-dir " + dir + "/hooked");
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_EQ(test::train_losses(dir + "/plain"), test::train_losses(dir + "/hooked"));
  const auto srank = test::metric_by_step(dir + "/hooked", "diag", "diag/srank");
  ASSERT_EQ(srank.size(), 4u);  // steps 0 (at initialisation), 4, 8, 12
  EXPECT_GE(srank.at(12), 1.0);
  EXPECT_LE(srank.at(12), 32.0);
  const auto entropy = test::metric_by_step(dir + "/hooked", "diag", "diag/head_entropy");
  EXPECT_GT(entropy.at(12), 0.0);
  EXPECT_LT(entropy.at(12), std::log(21.0));
  // No gradient exists before the first step.
  EXPECT_EQ(test::metric_by_step(dir + "/hooked", "diag", "diag/grad_norm/head").size(), 3u);
  EXPECT_EQ(test::metric_by_step(dir + "/hooked", "diag", "diag/weight_norm/head").size(), 4u);
}

}  // namespace
}  // namespace stoch
