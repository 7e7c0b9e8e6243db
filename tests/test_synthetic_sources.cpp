// Synthetic sources against independent brute force: exact entropy rates, exact conditionals and
// the samplers behind them.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/rng.h"
#include "data/dirichlet.h"
#include "data/hmm_source.h"
#include "data/markov_source.h"
#include "data/uniform_source.h"

namespace stoch::data {
namespace {

void expect_rows_are_distributions(const std::vector<double>& rows, int64_t n) {
  ASSERT_EQ(rows.size() % static_cast<size_t>(n), 0u);
  for (size_t r = 0; r < rows.size() / n; ++r) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      EXPECT_GT(rows[r * n + i], 0.0);
      sum += rows[r * n + i];
    }
    EXPECT_NEAR(sum, 1.0, 1e-12) << "row " << r;
  }
}

double plogp(double p) {
  return p > 0.0 ? -p * std::log(p) : 0.0;
}

// Calls visit(x) for every token sequence x over `vocab` of each length 1..max_len.
void for_each_sequence(int64_t vocab, int64_t max_len,
                       const std::function<void(const std::vector<int32_t>&)>& visit) {
  std::vector<int32_t> x;
  std::function<void()> extend = [&] {
    for (int32_t v = 0; v < vocab; ++v) {
      x.push_back(v);
      visit(x);
      if (static_cast<int64_t>(x.size()) < max_len) extend();
      x.pop_back();
    }
  };
  extend();
}

// Joint probability of a token sequence under an order-k chain, from its parameters alone.
double markov_joint(const MarkovSource& m, const std::vector<int32_t>& x) {
  const int64_t V = m.vocab_size(), k = m.order();
  int64_t context = 0;
  for (int64_t t = 0; t < k; ++t) context = context * V + x[t];
  double p = m.stationary()[context];
  for (size_t t = k; t < x.size(); ++t) {
    p *= m.transition()[context * V + x[t]];
    context = (context % (m.num_contexts() / V)) * V + x[t];
  }
  return p;
}

// H(X_1..n) for n = 1..max_len of an HMM by summing over the tree of prefixes, carrying the
// unnormalised forward vector alpha[s] = P(x_1..n, S_n = s). With `start` >= 0 the first hidden
// state is fixed to it (for H(X_1..n | S_1 = start)).
std::vector<double> hmm_block_entropies(const HmmSource& h, int64_t max_len, int64_t start) {
  const int64_t S = h.num_states(), V = h.vocab_size();
  const auto& T = h.transition();
  const auto& E = h.emission();
  std::vector<double> H(static_cast<size_t>(max_len + 1), 0.0);
  std::function<void(const std::vector<double>&, int64_t)> extend =
      [&](const std::vector<double>& prior, int64_t depth) {
        for (int64_t v = 0; v < V; ++v) {
          std::vector<double> alpha(S);
          double p = 0.0;
          for (int64_t s = 0; s < S; ++s) {
            alpha[s] = prior[s] * E[s * V + v];
            p += alpha[s];
          }
          H[depth + 1] += plogp(p);
          if (depth + 1 == max_len) continue;
          std::vector<double> next(S, 0.0);
          for (int64_t s = 0; s < S; ++s) {
            for (int64_t r = 0; r < S; ++r) next[r] += alpha[s] * T[s * S + r];
          }
          extend(next, depth + 1);
        }
      };
  std::vector<double> prior = h.stationary();
  if (start >= 0) {
    prior.assign(S, 0.0);
    prior[start] = 1.0;
  }
  extend(prior, 0);
  return H;
}

// P(x_1..n) of an HMM by summing over every hidden path, independently of any forward recursion.
double hmm_path_sum(const HmmSource& h, const std::vector<int32_t>& x) {
  const int64_t S = h.num_states(), V = h.vocab_size(), n = static_cast<int64_t>(x.size());
  int64_t paths = 1;
  for (int64_t t = 0; t < n; ++t) paths *= S;
  double total = 0.0;
  for (int64_t code = 0; code < paths; ++code) {
    int64_t rest = code, prev = -1;
    double p = 1.0;
    for (int64_t t = 0; t < n; ++t) {
      const int64_t s = rest % S;
      rest /= S;
      p *= (prev < 0 ? h.stationary()[s] : h.transition()[prev * S + s]) *
           h.emission()[s * V + x[t]];
      prev = s;
    }
    total += p;
  }
  return total;
}

TEST(SyntheticSources, DirichletRowsArePositiveDistributions) {
  Rng rng(7);
  for (double alpha : {0.001, 0.01, 0.1, 1.0, 10.0}) {
    expect_rows_are_distributions(sample_dirichlet_rows(rng, alpha, 50, 16), 16);
  }
  MarkovSource markov(8, 2, 0.1, 3);
  expect_rows_are_distributions(markov.transition(), 8);
  expect_rows_are_distributions(markov.stationary(), markov.num_contexts());
  HmmSource hmm(6, 10, 0.2, 0.05, 3);
  expect_rows_are_distributions(hmm.transition(), 6);
  expect_rows_are_distributions(hmm.emission(), 10);
  expect_rows_are_distributions(hmm.stationary(), 6);
}

TEST(SyntheticSources, GammaSamplerHasTheRightMoments) {
  // Gamma(a, 1) has mean a and variance a; covers both Marsaglia-Tsang and the a < 1 boost.
  for (double shape : {0.3, 1.0, 4.5}) {
    Rng rng(11);
    const int n = 200000;
    double sum = 0.0, sum_sq = 0.0;
    for (int i = 0; i < n; ++i) {
      const double g = sample_gamma(rng, shape);
      sum += g;
      sum_sq += g * g;
    }
    const double mean = sum / n, var = sum_sq / n - mean * mean;
    EXPECT_NEAR(mean, shape, 5.0 * std::sqrt(shape / n)) << "shape " << shape;
    EXPECT_NEAR(var, shape, 0.03 * shape + 0.01) << "shape " << shape;
  }
}

TEST(SyntheticSources, WindowsArePureFunctionsInRange) {
  MarkovSource markov(16, 2, 0.3, 5);
  HmmSource hmm(8, 16, 0.1, 0.1, 5);
  for (const TokenSource* src :
       {static_cast<const TokenSource*>(&markov), static_cast<const TokenSource*>(&hmm)}) {
    const int64_t len = 64;
    std::vector<int32_t> a(len), b(len), c(len), d(len);
    src->window(Split::kTrain, 42, len, a.data());
    src->window(Split::kTrain, 42, len, b.data());
    src->window(Split::kTrain, 43, len, c.data());
    src->window(Split::kVal, 42, len, d.data());
    EXPECT_EQ(a, b) << src->describe();
    EXPECT_NE(a, c) << src->describe();
    EXPECT_NE(a, d) << src->describe();
    for (int32_t x : a) {
      EXPECT_GE(x, 0);
      EXPECT_LT(x, src->vocab_size());
    }
    // A shorter window is a prefix of the longer one, and rebuilding the source changes nothing.
    std::vector<int32_t> prefix(5);
    src->window(Split::kTrain, 42, 5, prefix.data());
    EXPECT_TRUE(std::equal(prefix.begin(), prefix.end(), a.begin()));
  }
  MarkovSource markov_again(16, 2, 0.3, 5);
  std::vector<int32_t> a(32), b(32);
  markov.window(Split::kTrain, 9, 32, a.data());
  markov_again.window(Split::kTrain, 9, 32, b.data());
  EXPECT_EQ(a, b);
  std::vector<int32_t> one(1);
  MarkovSource order3(4, 3, 0.5, 1);
  order3.window(Split::kTrain, 0, 1, one.data());  // shorter than the order
  EXPECT_LT(one[0], 4);
}

TEST(SyntheticSources, MarkovEntropyRateMatchesBruteForce) {
  struct Case {
    int64_t vocab, order;
    double alpha;
    int64_t n;
  };
  for (Case c : {Case{3, 1, 0.5, 10}, Case{2, 2, 0.5, 10}, Case{2, 3, 0.3, 12}}) {
    MarkovSource m(c.vocab, c.order, c.alpha, 17);
    // H(X_n | X_<n) = H(X_1..n) - H(X_1..n-1) from the joint of all sequences.
    std::vector<double> H(static_cast<size_t>(c.n + 1), 0.0);
    for_each_sequence(c.vocab, c.n, [&](const std::vector<int32_t>& x) {
      if (static_cast<int64_t>(x.size()) < c.order) return;
      const double p = markov_joint(m, x);
      H[x.size()] += plogp(p);
      if (static_cast<int64_t>(x.size()) == c.n) {
        // The source's conditionals multiply up to the same joint.
        const std::vector<double> rows = m.exact_conditionals(x.data(), c.n);
        double q = 1.0;
        for (int64_t t = 0; t < c.n; ++t) q *= rows[t * c.vocab + x[t]];
        EXPECT_NEAR(q / p, 1.0, 1e-12);
      }
    });
    const double conditional = H[c.n] - H[c.n - 1];
    EXPECT_NEAR(conditional, *m.entropy_rate_nats(), 1e-9) << m.describe();
    EXPECT_GT(*m.entropy_rate_nats(), 0.0);
  }
}

TEST(SyntheticSources, StationaryDistributionsAreFixedPoints) {
  // 6^2 contexts are solved by elimination, 6^4 by power iteration; both must be fixed points,
  // and the two methods must agree with each other.
  for (int64_t order : {2, 4}) {
    MarkovSource m(6, order, 0.2, 23);
    const int64_t N = m.num_contexts(), V = 6;
    std::vector<double> moved(N, 0.0);
    for (int64_t c = 0; c < N; ++c) {
      for (int64_t x = 0; x < V; ++x) {
        moved[(c % (N / V)) * V + x] += m.stationary()[c] * m.transition()[c * V + x];
      }
    }
    double residual = 0.0;
    for (int64_t c = 0; c < N; ++c) residual += std::fabs(moved[c] - m.stationary()[c]);
    EXPECT_LT(residual, 1e-12) << "order " << order;
  }
  MarkovSource m(6, 3, 0.2, 23);
  const std::vector<double> by_power = stationary_by_power_iteration(m.transition(), 6, 216);
  const std::vector<double> by_elimination = stationary_by_elimination(m.transition(), 6, 216);
  for (int64_t c = 0; c < 216; ++c) EXPECT_NEAR(by_power[c], by_elimination[c], 1e-12);
}

TEST(SyntheticSources, EliminationIsExactForNearlyDecomposableChains) {
  // Two sticky states leak 1e-15 per step: power iteration's residual test passes long before it
  // nears the answer, elimination gets it to rounding. The Markov chain tree theorem gives the
  // answer as sums of products (no cancellation).
  const double e = 1e-15;
  const std::vector<double> P = {1 - e, 0.5 * e, 0.5 * e, 2 * e, 1 - 3 * e, e, 0.3, 0.3, 0.4};
  auto p = [&](int i, int j) { return P[i * 3 + j]; };
  std::vector<double> want = {p(1, 0) * p(2, 0) + p(1, 2) * p(2, 0) + p(2, 1) * p(1, 0),
                              p(0, 1) * p(2, 1) + p(0, 2) * p(2, 1) + p(2, 0) * p(0, 1),
                              p(0, 2) * p(1, 2) + p(0, 1) * p(1, 2) + p(1, 0) * p(0, 2)};
  const double total = want[0] + want[1] + want[2];
  const std::vector<double> got = stationary_distribution(P, 3, 3);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(got[i] / (want[i] / total), 1.0, 1e-9) << i;
}

TEST(SyntheticSources, HmmEntropyRateIsSandwichedByBruteForceBounds) {
  struct Case {
    int64_t vocab;
    double alpha_t, alpha_e;
    int64_t n;
    bool fast_mixing;
  };
  for (Case c : {Case{2, 20.0, 0.5, 14, true}, Case{3, 0.1, 0.5, 11, false}}) {
    HmmSource h(2, c.vocab, c.alpha_t, c.alpha_e, 31, 300'000);
    // Upper bounds H(X_n | X_<n) (non-increasing) and lower bounds H(X_n | X_<n, S_1)
    // (non-decreasing); the rate lies between them for every n (Cover & Thomas 4.5).
    const std::vector<double> H = hmm_block_entropies(h, c.n, -1);
    std::vector<double> H_given_start(H.size(), 0.0);
    for (int64_t s = 0; s < 2; ++s) {
      const std::vector<double> Hs = hmm_block_entropies(h, c.n, s);
      for (size_t i = 0; i < H.size(); ++i) H_given_start[i] += h.stationary()[s] * Hs[i];
    }
    std::vector<double> upper(c.n + 1), lower(c.n + 1);
    for (int64_t n = 1; n <= c.n; ++n) {
      upper[n] = H[n] - H[n - 1];
      lower[n] = H_given_start[n] - H_given_start[n - 1];
      // Differences of block entropies of size ~n carry rounding of ~1e-12.
      EXPECT_LE(lower[n], upper[n] + 1e-10);
      if (n > 1) {
        EXPECT_LE(upper[n], upper[n - 1] + 1e-10) << "n " << n;
        EXPECT_GE(lower[n], lower[n - 1] - 1e-10) << "n " << n;
      }
    }
    const double rate = *h.entropy_rate_nats(), se = h.entropy_rate_stderr();
    EXPECT_GT(se, 0.0);
    EXPECT_LT(se, 0.01);
    EXPECT_LE(rate, upper[c.n] + 4.0 * se) << h.describe();
    EXPECT_GE(rate, lower[c.n] - 4.0 * se) << h.describe();
    if (c.fast_mixing) {
      ASSERT_LT(upper[c.n] - lower[c.n], 1e-4) << "the case is meant to mix fast";
      EXPECT_NEAR(rate, upper[c.n], 4.0 * se) << h.describe();
    }
  }
}

TEST(SyntheticSources, HmmConditionalsMatchPathSums) {
  HmmSource h(3, 4, 0.5, 0.3, 8);
  const int64_t V = 4, len = 8;
  std::vector<int32_t> x(len);
  h.window(Split::kVal, 3, len, x.data());
  const std::vector<double> rows = h.exact_conditionals(x.data(), len);
  expect_rows_are_distributions(rows, V);

  double sum_nll = 0.0;
  for (int64_t t = 0; t < len; ++t) {
    // Every entry of row t against P(x_<t, v) / P(x_<t) by brute force.
    std::vector<int32_t> prefix(x.begin(), x.begin() + t);
    const double p_prefix = t == 0 ? 1.0 : hmm_path_sum(h, prefix);
    prefix.push_back(0);
    for (int32_t v = 0; v < V; ++v) {
      prefix.back() = v;
      EXPECT_NEAR(rows[t * V + v], hmm_path_sum(h, prefix) / p_prefix, 1e-12) << t << " " << v;
    }
    sum_nll -= std::log(rows[t * V + x[t]]);
  }
  const double brute = -std::log(hmm_path_sum(h, x));
  EXPECT_NEAR(h.bayes_nll(x.data(), len), brute, 1e-10);
  EXPECT_NEAR(sum_nll, brute, 1e-10);
}

TEST(SyntheticSources, EmpiricalFrequenciesMatchExactConditionals) {
  // Markov: transitions counted over many windows against the rows; the first token against
  // exact_conditionals row 0.
  const int64_t V = 4, windows = 2000, len = 128;
  MarkovSource m(V, 2, 1.0, 4);
  const int64_t N = m.num_contexts();
  std::vector<double> counts(N * V, 0.0), first(V, 0.0);
  std::vector<int32_t> x(len);
  for (int64_t w = 0; w < windows; ++w) {
    m.window(Split::kTrain, w, len, x.data());
    first[x[0]] += 1.0;
    for (int64_t t = 2; t < len; ++t) counts[(x[t - 2] * V + x[t - 1]) * V + x[t]] += 1.0;
  }
  for (int64_t c = 0; c < N; ++c) {
    double total = 0.0;
    for (int64_t v = 0; v < V; ++v) total += counts[c * V + v];
    ASSERT_GT(total, 1000.0);
    for (int64_t v = 0; v < V; ++v) {
      const double p = m.transition()[c * V + v];
      EXPECT_NEAR(counts[c * V + v] / total, p, 5.0 * std::sqrt(p * (1 - p) / total) + 1e-3);
    }
  }
  const std::vector<double> rows = m.exact_conditionals(x.data(), len);
  expect_rows_are_distributions(rows, V);
  for (int64_t t = 2; t < len; ++t) {
    for (int64_t v = 0; v < V; ++v) {
      EXPECT_EQ(rows[t * V + v], m.transition()[(x[t - 2] * V + x[t - 1]) * V + v]);
    }
  }

  // HMM: the first token of a window is drawn from pi E, row 0 of the exact conditionals.
  HmmSource h(5, V, 0.3, 0.3, 4);
  std::vector<double> h_first(V, 0.0);
  for (int64_t w = 0; w < 20000; ++w) {
    h.window(Split::kTrain, w, 1, x.data());
    h_first[x[0]] += 1.0;
  }
  const std::vector<double> row0 = h.exact_conditionals(x.data(), 1);
  for (int64_t v = 0; v < V; ++v) {
    const double p = row0[v];
    EXPECT_NEAR(h_first[v] / 20000, p, 5.0 * std::sqrt(p * (1 - p) / 20000) + 1e-3);
  }
  const std::vector<double> m_row0 = m.exact_conditionals(x.data(), 1);
  for (int64_t v = 0; v < V; ++v) {
    const double p = m_row0[v];
    EXPECT_NEAR(first[v] / windows, p, 5.0 * std::sqrt(p * (1 - p) / windows) + 1e-3);
  }
}

TEST(SyntheticSources, EntropyRateIsReproducible) {
  HmmSource a(4, 8, 0.3, 0.3, 2, 50'000), b(4, 8, 0.3, 0.3, 2, 50'000);
  EXPECT_EQ(*a.entropy_rate_nats(), *b.entropy_rate_nats());
  EXPECT_EQ(a.entropy_rate_stderr(), b.entropy_rate_stderr());
}

template <class F>
void expect_invalid(F make, const std::string& key) {
  try {
    make();
    ADD_FAILURE() << "expected std::invalid_argument naming " << key;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
  }
}

TEST(SyntheticSources, RejectsBadParametersByName) {
  expect_invalid([] { MarkovSource(1, 1, 1.0, 0); }, "data.vocab_size: expected >= 2, got 1");
  expect_invalid([] { MarkovSource(4, 0, 1.0, 0); }, "data.order");
  expect_invalid([] { MarkovSource(4, 1, 0.0, 0); }, "data.alpha");
  expect_invalid([] { MarkovSource(4, 1, NAN, 0); }, "data.alpha");
  expect_invalid([] { MarkovSource(1024, 3, 1.0, 0); }, "data.order");
  expect_invalid([] { HmmSource(0, 4, 1.0, 1.0, 0); }, "data.states");
  expect_invalid([] { HmmSource(2, 1, 1.0, 1.0, 0); }, "data.vocab_size");
  expect_invalid([] { HmmSource(2, 4, -1.0, 1.0, 0); }, "data.alpha_transition");
  expect_invalid([] { HmmSource(2, 4, 1.0, 0.0, 0); }, "data.alpha_emission");
  const std::vector<int32_t> bad = {0, 7};
  expect_invalid([&] { HmmSource(2, 4, 1.0, 1.0, 0).bayes_nll(bad.data(), 2); }, "token 1");
  expect_invalid([&] { MarkovSource(4, 1, 1.0, 0).exact_conditionals(bad.data(), 2); }, "token 1");
}

TEST(SyntheticSources, DescribeNamesParameters) {
  EXPECT_EQ(HmmSource(8, 32, 0.1, 0.1, 1).describe(),
            "hmm(states=8, vocab=32, alpha_t=0.1, alpha_e=0.1, seed=1)");
  EXPECT_EQ(MarkovSource(32, 2, 0.5, 7).describe(), "markov(vocab=32, order=2, alpha=0.5, seed=7)");
}

}  // namespace
}  // namespace stoch::data

namespace stoch::data {
namespace {

TEST(SyntheticSources, UniformTokensAreUniformIndependentAndPure) {
  const int64_t V = 50304;  // GPT-2's padded vocabulary: too large for a Markov table
  UniformSource src(V, 4);
  EXPECT_DOUBLE_EQ(*src.entropy_rate_nats(), std::log(static_cast<double>(V)));
  EXPECT_TRUE(src.stationary_bigram().empty());  // V x V would not fit
  std::vector<int32_t> a(4096), b(4096), c(4096);
  src.window(Split::kTrain, 7, 4096, a.data());
  src.window(Split::kTrain, 7, 4096, b.data());
  src.window(Split::kVal, 7, 4096, c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (int32_t t : a) ASSERT_TRUE(t >= 0 && t < V);

  // Chi-square over 8 coarse bins and over consecutive pairs of a small vocabulary.
  UniformSource small(8, 1);
  std::vector<int32_t> w(200000);
  small.window(Split::kTrain, 0, static_cast<int64_t>(w.size()), w.data());
  std::vector<double> counts(8, 0.0), pairs(64, 0.0);
  for (size_t i = 0; i < w.size(); ++i) {
    counts[static_cast<size_t>(w[i])] += 1;
    if (i + 1 < w.size()) pairs[static_cast<size_t>(w[i] * 8 + w[i + 1])] += 1;
  }
  auto chi2 = [](const std::vector<double>& n) {
    double total = 0, x = 0;
    for (double v : n) total += v;
    const double e = total / static_cast<double>(n.size());
    for (double v : n) x += (v - e) * (v - e) / e;
    return x;
  };
  EXPECT_LT(chi2(counts), 24.3);  // 7 degrees of freedom, p = 0.001
  EXPECT_LT(chi2(pairs), 103.4);  // 63 degrees of freedom, p = 0.001
  const auto bigram = small.stationary_bigram();
  ASSERT_EQ(bigram.size(), 64u);
  EXPECT_DOUBLE_EQ(bigram[9], 1.0 / 64.0);
}

}  // namespace
}  // namespace stoch::data
