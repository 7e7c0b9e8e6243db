// Speculative sampling keeps the model's distribution exactly: greedy output equals plain greedy
// output, and sampled continuations follow the product of the model's conditionals.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>

#include "generate/sampling.h"
#include "test_util.h"

namespace stoch {
namespace {

struct TinyLm {
  models::Gpt gpt{nullptr};
  generate::SurplusProbe probe{nullptr};
};

// A random model with sharp predictions (scaled embeddings) and an untrained probe, so drafts
// are often rejected and the residual path runs.
TinyLm tiny_lm(int64_t vocab, double sharpness) {
  torch::manual_seed(7);
  models::LmConfig c;
  c.vocab_size = vocab;
  c.context = 12;
  c.n_layer = 1;
  c.n_head = 2;
  c.d_model = 16;
  TinyLm lm{models::Gpt(c), generate::SurplusProbe(16, 3)};
  torch::NoGradGuard no_grad;
  lm.gpt->wte->weight.mul_(sharpness);
  lm.gpt->eval();
  return lm;
}

TEST(SpeculativeSampling, GreedyEqualsPlainGreedy) {
  auto lm = tiny_lm(6, 60.0);
  const generate::SamplingParams sp{0.0, 0, 1.0, 6};
  for (int64_t draft : {1, 3, 5}) {
    auto g1 = at::make_generator<at::CPUGeneratorImpl>(1);
    auto g2 = at::make_generator<at::CPUGeneratorImpl>(1);
    generate::SamplingStats stats;
    // 30 tokens from a 2-token prompt slide past the 12-token context.
    const auto plain = generate::sample_plain(*lm.gpt, {1, 4}, 30, sp, g1);
    const auto spec =
        generate::sample_speculative(*lm.gpt, *lm.probe, {1, 4}, 30, draft, sp, g2, &stats);
    EXPECT_EQ(plain, spec) << "draft " << draft;
    EXPECT_LE(stats.model_calls, 30);
    EXPECT_LE(stats.accepted, stats.drafted);
  }
}

// A verifying call sees the last `context` tokens of the text and its drafts, so a draft is
// checked against the model's own distribution only while the whole text and drafts fit: past
// that, each token takes one model call, as plain sampling does, and nothing is drafted.
TEST(SpeculativeSampling, DraftsOnlyWhileTheTextFitsTheContext) {
  auto lm = tiny_lm(6, 12.0);
  const generate::SamplingParams sp{1.0, 0, 1.0, 6};
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  generate::SamplingStats full;
  const std::vector<int64_t> twelve(12, 1);  // the whole context
  generate::sample_speculative(*lm.gpt, *lm.probe, twelve, 5, 3, sp, gen, &full);
  EXPECT_EQ(full.drafted, 0);
  EXPECT_EQ(full.model_calls, 5);
  // From 8 tokens (9 after the first draw), each round drafts at most the places left: 3, then
  // at most 2, then 1, then none.
  generate::SamplingStats eight;
  const auto out = generate::sample_speculative(*lm.gpt, *lm.probe, std::vector<int64_t>(8, 1), 20,
                                                3, sp, gen, &eight);
  EXPECT_EQ(out.size(), 28u);
  EXPECT_GE(eight.drafted, 1);
  EXPECT_LE(eight.drafted, 3 + 2 + 1);
  EXPECT_EQ(eight.model_calls, 20 - eight.accepted);
}

// A draft length at or past the context drafts what context - 1 drafts (the free places bound
// every round), and no tokens asked is no tokens made, as with plain sampling.
TEST(SpeculativeSampling, DraftsPastTheContextAreBoundByItsFreePlaces) {
  auto lm = tiny_lm(6, 12.0);
  const generate::SamplingParams sp{1.0, 0, 1.0, 6};
  std::vector<std::vector<int64_t>> outs;
  for (int64_t draft : {11, 12, 40}) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
    outs.push_back(generate::sample_speculative(*lm.gpt, *lm.probe, {1, 4}, 20, draft, sp, gen));
  }
  EXPECT_EQ(outs[0], outs[1]);
  EXPECT_EQ(outs[0], outs[2]);
  EXPECT_EQ(outs[0].size(), 22u);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
  EXPECT_EQ(generate::sample_speculative(*lm.gpt, *lm.probe, {1, 4}, 0, 3, sp, gen),
            (std::vector<int64_t>{1, 4}));
}

// The exact probability of each 3-token continuation under the filtered model, against the
// frequencies of speculative samples: a chi-square test over the cells.
void expect_model_distribution(const generate::SamplingParams& sp, int64_t draft,
                               const std::vector<int64_t>& prompt = {2, 0, 1}) {
  auto lm = tiny_lm(sp.vocab, 12.0);
  const size_t P = prompt.size();
  const int64_t V = sp.vocab;
  std::map<std::vector<int64_t>, double> exact;
  {
    torch::NoGradGuard no_grad;
    // As the samplers read it: the last `context` tokens.
    const auto probs_after = [&](std::vector<int64_t> ids) {
      const size_t ctx = static_cast<size_t>(lm.gpt->config().context);
      if (ids.size() > ctx) ids.erase(ids.begin(), ids.end() - static_cast<int64_t>(ctx));
      return generate::sampling_probs(
          lm.gpt->forward(torch::tensor(ids, torch::kLong).unsqueeze(0))[0][-1], sp);
    };
    const auto p1 = probs_after(prompt);
    for (int64_t a = 0; a < V; ++a) {
      auto s1 = prompt;
      s1.push_back(a);
      const auto p2 = probs_after(s1);
      for (int64_t b = 0; b < V; ++b) {
        auto s2 = s1;
        s2.push_back(b);
        const auto p3 = probs_after(s2);
        for (int64_t c = 0; c < V; ++c)
          exact[{a, b, c}] = p1[a].item<double>() * p2[b].item<double>() * p3[c].item<double>();
      }
    }
  }
  const int n = 4000;
  std::map<std::vector<int64_t>, double> seen;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
  generate::SamplingStats stats;
  for (int i = 0; i < n; ++i) {
    const auto out =
        generate::sample_speculative(*lm.gpt, *lm.probe, prompt, 3, draft, sp, gen, &stats);
    seen[{out[P], out[P + 1], out[P + 2]}] += 1;
  }
  double chi2 = 0;
  int cells = 0;
  for (const auto& [seq, p] : exact) {
    const double e = p * n, o = seen.count(seq) ? seen.at(seq) : 0.0;
    if (p < 1e-12) {
      EXPECT_EQ(o, 0.0) << "a filtered-out continuation was drawn";
      continue;
    }
    if (e < 5) continue;  // too rare for the chi-square approximation
    chi2 += (o - e) * (o - e) / e;
    ++cells;
  }
  ASSERT_GE(cells, 8);
  // 99.9% quantile of chi-square with k - 1 degrees of freedom, by Wilson-Hilferty.
  const double k = cells - 1, z = 3.09;
  const double limit = k * std::pow(1 - 2 / (9 * k) + z * std::sqrt(2 / (9 * k)), 3);
  EXPECT_LT(chi2, limit) << cells << " cells";
  EXPECT_LT(stats.accepted, stats.drafted);  // some drafts were rejected: the residual path ran
  EXPECT_GT(stats.accepted, 0);
}

TEST(SpeculativeSampling, SamplesFollowTheModelsDistribution) {
  expect_model_distribution({1.0, 0, 1.0, 4}, 2);
  // From 10 tokens the three cross the 12-token context.
  expect_model_distribution({1.0, 0, 1.0, 4}, 2, {2, 0, 1, 3, 3, 0, 2, 1, 0, 2});
}

TEST(SamplingProbs, FiltersKeepTheMostLikelyTokens) {
  const auto logits =
      torch::tensor({std::log(0.1), std::log(0.5), std::log(0.15), std::log(0.25)}, torch::kDouble);
  const auto probs = [&](double temperature, int64_t top_k, double top_p) {
    return generate::sampling_probs(logits, {temperature, top_k, top_p, 4});
  };
  const auto expect = [](const torch::Tensor& got, std::vector<double> want) {
    EXPECT_TRUE(torch::allclose(got, torch::tensor(want, torch::kDouble))) << got;
  };
  expect(probs(1.0, 0, 1.0), {0.1, 0.5, 0.15, 0.25});
  expect(probs(1.0, 2, 1.0), {0, 0.5 / 0.75, 0, 0.25 / 0.75});
  // 0.5 alone does not reach 0.6; with 0.25 it does.
  expect(probs(1.0, 0, 0.6), {0, 0.5 / 0.75, 0, 0.25 / 0.75});
  expect(probs(1.0, 0, 0.5), {0, 1, 0, 0});
  // top_p = 0 keeps the most likely token alone (an empty nucleus would normalise to NaNs).
  expect(probs(1.0, 0, 0.0), {0, 1, 0, 0});
  expect(probs(0.0, 0, 1.0), {0, 1, 0, 0});
}

TEST(SpeculativeSampling, FilteredSamplesFollowTheFilteredDistribution) {
  expect_model_distribution({1.6, 3, 0.9, 5}, 3);
}

TEST(SpeculativeSampling, CommandNeedsASurplusProbe) {
  const std::string dir = test::temp_dir("sample");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(5));
  ASSERT_EQ(test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/run").code, 0);
  const auto r = test::run_stoch("sample " + dir + "/run --prompt '1 2' --speculative");
  EXPECT_EQ(r.code, 2) << r.output;
  EXPECT_NE(r.output.find("surplus"), std::string::npos) << r.output;
  test::write_text(dir + "/s.yaml",
                   test::tiny_lm_config(5) + "hooks:\n  - {name: surplus, every: 5}\n");
  ASSERT_EQ(test::run_stoch("train " + dir + "/s.yaml --run-dir " + dir + "/s").code, 0);
  const auto ok = test::run_stoch(
      "sample " + dir + "/s --prompt '1 2' --max-tokens 20 --speculative --temperature 0");
  ASSERT_EQ(ok.code, 0) << ok.output;
  const auto plain =
      test::run_stoch("sample " + dir + "/s --prompt '1 2' --max-tokens 20 --temperature 0");
  // The same greedy continuation (the last line of each output).
  EXPECT_EQ(ok.output.substr(ok.output.rfind("1 2 |")),
            plain.output.substr(plain.output.rfind("1 2 |")));
}

TEST(LmCommands, UseTheCheckpointAsked) {
  const std::string dir = test::temp_dir("sample");
  test::write_text(dir + "/c.yaml", test::tiny_lm_config(4));
  ASSERT_EQ(test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir +
                            "/run --set train.ckpt_every=2 --set train.eval_every=2")
                .code,
            0);
  for (const char* cmd : {"sample", "eval"}) {
    const auto r = test::run_stoch(std::string(cmd) + " " + dir + "/run --checkpoint 3");
    EXPECT_EQ(r.code, 2) << r.output;
    EXPECT_NE(r.output.find("--checkpoint 3: " + dir +
                            "/run has no checkpoint of that step (it has 2, 4)"),
              std::string::npos)
        << r.output;
  }
  const auto r =
      test::run_stoch("sample " + dir + "/run --prompt '1' --max-tokens 3 --checkpoint 2");
  EXPECT_EQ(r.code, 0) << r.output;
  ASSERT_NO_FATAL_FAILURE(test::expect_eval_reprints_log(dir + "/run", 4));
  ASSERT_NO_FATAL_FAILURE(test::expect_eval_reprints_log(dir + "/run", 2, "--checkpoint 2"));
  // The network is the checkpoint's: eval refuses to read it into another (n_head 4 has the
  // same shapes, and was evaluated under the run's name).
  for (const char* set :
       {"model.n_head=4", "model.activation=gelu_tanh", "task=dqn", "value.v_min=-3"}) {
    const auto refused = test::run_stoch("eval " + dir + "/run --set " + set);
    EXPECT_EQ(refused.code, 2) << refused.output;
    EXPECT_NE(refused.output.find(std::string("--set ") + set + ": "), std::string::npos)
        << refused.output;
    EXPECT_NE(refused.output.find(" is the checkpoint's network"), std::string::npos)
        << refused.output;
  }
}

}  // namespace
}  // namespace stoch
