// The information-surplus hook against known truth: zero on an order-1 Markov source, the
// Bayes surplus (from forward filtering) on a hidden Markov model; and its state resumes exactly.
#include <gtest/gtest.h>

#include <cmath>
#include <utility>
#include <vector>

#include "core/errors.h"
#include "data/hmm_source.h"
#include "data/markov_source.h"
#include "hooks/ngram_counts.h"
#include "test_util.h"

namespace stoch {
namespace {

// A tiny model trained long enough to be near the source's Bayes loss; the probe sees 1024
// fresh windows per call, so it is close to converged by the end.
std::string surplus_config(const std::string& data, int steps = 400) {
  return "task: lm\n"
         "run: {seed: 3, threads: 2, device: cpu}\n"
         "data: " +
         data +
         "\n"
         "model: {context: 16, n_layer: 1, n_head: 2, d_model: 32}\n"
         "optim: {lr: 0.01}\n"
         "schedule: {warmup_steps: 20, decay_steps: 400}\n"
         "train: {steps: " +
         std::to_string(steps) +
         ", batch_size: 16, eval_every: 100, eval_batches: 8, ckpt_every: 100}\n"
         "log: {console_every: 1000}\n"
         "hooks:\n  - {name: surplus, every: 50, train_windows: 1024}\n";
}

// Mean of a diag metric over the last three calls (steps 300, 350, 400).
double late_mean(const std::map<int64_t, double>& by_step) {
  EXPECT_GE(by_step.size(), 3u);
  double sum = 0.0;
  int n = 0;
  for (auto it = by_step.rbegin(); it != by_step.rend() && n < 3; ++it, ++n) sum += it->second;
  return sum / n;
}

TEST(SurplusHook, ZeroOnAnOrderOneMarkovSource) {
  const std::string dir = test::temp_dir("surplus");
  test::write_text(dir + "/c.yaml",
                   surplus_config("{source: markov, vocab_size: 8, order: 1, alpha: 0.3}"));
  const auto r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/run");
  ASSERT_EQ(r.code, 0) << r.output;
  const double surplus = late_mean(test::metric_by_step(dir + "/run", "diag", "diag/surplus"));
  EXPECT_LT(std::abs(surplus), 0.02);
  // The exact surplus of an order-1 chain is 0 (up to the sampling noise of the held-out set).
  const double bayes = late_mean(test::metric_by_step(dir + "/run", "diag", "diag/surplus_bayes"));
  EXPECT_LT(std::abs(bayes), 1e-9);
  // Against the exact bigram the probe has nothing to add either, and with 8 tokens the counted
  // table is close to the exact one.
  const double exact = late_mean(test::metric_by_step(dir + "/run", "diag", "diag/surplus_exact"));
  EXPECT_LT(std::abs(exact), 0.02);
  EXPECT_NEAR(late_mean(test::metric_by_step(dir + "/run", "diag", "diag/ce_bigram")),
              late_mean(test::metric_by_step(dir + "/run", "diag", "diag/ce_bigram_exact")), 0.01);
  // Both terms are logged, not only the difference, and the untrained probe starts far off.
  const auto ce_probe = test::metric_by_step(dir + "/run", "diag", "diag/ce_probe");
  EXPECT_GT(ce_probe.at(0), ce_probe.at(400) + 0.1);
}

TEST(SurplusHook, PositiveAndNearTheBayesSurplusOnAHiddenMarkovModel) {
  const std::string dir = test::temp_dir("surplus");
  // Sticky hidden states: the hidden state carries information the last token does not.
  test::write_text(dir + "/c.yaml",
                   surplus_config("{source: hmm, states: 4, vocab_size: 8, alpha_transition: 0.05, "
                                  "alpha_emission: 0.3, entropy_tokens: 200000}"));
  const auto r = test::run_stoch("train " + dir + "/c.yaml --run-dir " + dir + "/run");
  ASSERT_EQ(r.code, 0) << r.output;
  const double surplus = late_mean(test::metric_by_step(dir + "/run", "diag", "diag/surplus"));
  const double bayes = late_mean(test::metric_by_step(dir + "/run", "diag", "diag/surplus_bayes"));
  ASSERT_GT(bayes, 0.05);
  EXPECT_GT(surplus, 0.0);
  EXPECT_LT(std::abs(surplus - bayes), 0.25 * bayes) << surplus << " vs Bayes " << bayes;
  const double exact = late_mean(test::metric_by_step(dir + "/run", "diag", "diag/surplus_exact"));
  EXPECT_LT(std::abs(exact - bayes), 0.25 * bayes) << exact << " vs Bayes " << bayes;
  EXPECT_LE(exact, bayes + 0.02);  // a lower bound, up to the held-out set's noise
  // A probe cannot beat the model it reads by much: efficiency is near or below 1.
  EXPECT_LT(late_mean(test::metric_by_step(dir + "/run", "diag", "diag/surplus_efficiency")), 1.2);
  const double accept = late_mean(test::metric_by_step(dir + "/run", "diag", "diag/accept_proxy"));
  EXPECT_GT(accept, 0.5);
  EXPECT_LE(accept, 1.0);
}

// The Bayes baseline's exact bigram: rows of the stationary joint are the marginal, and the
// joint agrees with pair frequencies in sampled windows.
TEST(SurplusHook, StationaryBigramMatchesSampledPairs) {
  const data::HmmSource hmm(3, 5, 0.3, 0.5, 11, 10000);
  const data::MarkovSource markov(5, 2, 0.5, 12);
  for (const data::TokenSource* src : {static_cast<const data::TokenSource*>(&hmm),
                                       static_cast<const data::TokenSource*>(&markov)}) {
    const auto joint = src->stationary_bigram();
    ASSERT_EQ(joint.size(), 25u);
    double total = 0.0;
    for (double p : joint) total += p;
    EXPECT_NEAR(total, 1.0, 1e-12);
    std::vector<double> counts(25, 0.0);
    std::vector<int32_t> w(64);
    int64_t pairs = 0;
    for (uint64_t i = 0; i < 4000; ++i) {
      src->window(data::Split::kTrain, i, 64, w.data());
      for (int t = 0; t + 1 < 64; ++t, ++pairs) counts[w[t] * 5 + w[t + 1]] += 1.0;
    }
    for (int k = 0; k < 25; ++k) {
      const double p = joint[k], se = std::sqrt(p * (1 - p) / (pairs / 20.0));  // windows correlate
      EXPECT_NEAR(counts[k] / pairs, p, 5 * se + 1e-4) << src->describe() << " pair " << k;
    }
  }
}

// The baseline's table is sparse (a dense row per context grew by V doubles) and saves sorted
// entries; it still reads the dense rows earlier versions saved, and refuses counts outside
// the vocabulary.
TEST(SurplusHook, NgramCountsSaveSparseAndReadTheDenseForm) {
  const int64_t V = 5;
  hooks::NgramCounts counts(1, V);
  const std::vector<std::pair<int32_t, int32_t>> pairs = {{0, 1}, {0, 1}, {0, 4}, {3, 2}};
  for (const auto& [a, b] : pairs) counts.add(&a, b);
  const auto saved = counts.state("ngram2.");
  ASSERT_EQ(saved.size(), 3u);
  EXPECT_EQ(saved[2].second.numel(), 3);  // three distinct pairs
  hooks::NgramCounts again(1, V), dense(1, V);
  again.load(saved, "ngram2.", "test");
  // The dense form: contexts 0 and 3, each row's V counts then its total.
  auto rows = torch::zeros({2, V + 1}, torch::kDouble);
  rows[0][1] = 2;
  rows[0][4] = 1;
  rows[0][V] = 3;
  rows[1][2] = 1;
  rows[1][V] = 1;
  dense.load({{"ngram2.keys", torch::tensor({0, 3}, torch::kLong)}, {"ngram2.counts", rows}},
             "ngram2.", "test");
  for (int32_t a = 0; a < V; ++a)
    for (int32_t b = 0; b < V; ++b) {
      EXPECT_EQ(again.log_prob(&a, b, 0.1), counts.log_prob(&a, b, 0.1)) << a << " " << b;
      EXPECT_EQ(dense.log_prob(&a, b, 0.1), counts.log_prob(&a, b, 0.1)) << a << " " << b;
    }
  const int32_t zero = 0;
  EXPECT_DOUBLE_EQ(counts.log_prob(&zero, 1, 0.1), std::log(2.1 / 3.5));
  auto bad = saved;
  bad[1].second = torch::tensor({1, 7, 2}, torch::kLong);  // a token past the vocabulary
  EXPECT_THROW(again.load(bad, "ngram2.", "test"), InputError);
}

TEST(SurplusHook, StateResumesExactly) {
  const std::string dir = test::temp_dir("surplus");
  const std::string cfg = test::tiny_lm_config(20) +
                          "hooks:\n  - {name: surplus, every: 5, train_windows: 8, horizon: 3}\n";
  test::write_text(dir + "/c.yaml", cfg);
  ASSERT_NO_FATAL_FAILURE(test::train_straight_and_split(dir + "/c.yaml", dir, 10, 20));
  for (const std::string m : {"diag/surplus", "diag/ce_probe", "diag/probe_train_ce",
                              "diag/surplus_k3", "diag/surplus_total"}) {
    const auto a = test::metric_by_step(dir + "/straight", "diag", m);
    ASSERT_EQ(a.size(), 5u) << m;  // steps 0, 5, 10, 15, 20
    EXPECT_EQ(a, test::metric_by_step(dir + "/split", "diag", m)) << m;
  }
}

// After a resume the probe is rebuilt at the hook's next call; a checkpoint written before that
// call must still carry the probe's state, or resuming from it restarts the probe from scratch.
TEST(SurplusHook, StateSurvivesCheckpointsBeforeItsFirstCallAfterResume) {
  const std::string dir = test::temp_dir("surplus-gap");
  const std::string cfg = test::tiny_lm_config(20) +
                          "hooks:\n  - {name: surplus, every: 5, train_windows: 8, horizon: 3}\n";
  test::write_text(dir + "/c.yaml", cfg);
  ASSERT_NO_FATAL_FAILURE(test::train_straight_and_split(dir + "/c.yaml", dir, 10, 15, "",
                                                         " --set train.ckpt_every=1"));
  // As if killed before step 15's checkpoint: step 14's, written before the hook ran again,
  // is the newest.
  const std::string split = dir + "/split";
  ASSERT_TRUE(std::filesystem::is_regular_file(test::checkpoint_dir(split, 14) + "/manifest.json"));
  std::filesystem::remove_all(test::checkpoint_dir(split, 15));
  const auto r = test::run_stoch("resume " + split + " --set train.steps=20");
  ASSERT_EQ(r.code, 0) << r.output;
  for (const std::string m : {"diag/ce_probe", "diag/probe_train_ce", "diag/surplus_k3"}) {
    const auto a = test::metric_by_step(dir + "/straight", "diag", m);
    ASSERT_EQ(a.size(), 5u) << m;  // steps 0, 5, 10, 15, 20
    EXPECT_EQ(a, test::metric_by_step(split, "diag", m)) << m;
  }
}

}  // namespace
}  // namespace stoch
