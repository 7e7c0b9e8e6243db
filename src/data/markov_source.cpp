#include "data/markov_source.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>

#include "core/rng.h"
#include "data/dirichlet.h"

namespace stoch::data {

namespace {

// Stream tag that keeps the parameter draws apart from the windows' (split, index) streams.
constexpr uint64_t kParameterStream = 0x6D61726B6F76ull;  // "markov"
constexpr double kStationaryTolerance = 1e-13;
// Power iteration gives up after this many multiply-adds (a few seconds), or 100000 iterations.
constexpr double kMaxPowerIterationWork = 1e10;
// Chains up to this many contexts are solved by exact elimination (under 0.1 s).
constexpr int64_t kMaxEliminationContexts = 512;

double row_entropy(const double* p, int64_t n) {
  double h = 0.0;
  for (int64_t i = 0; i < n; ++i) h -= p[i] * std::log(p[i]);
  return h;
}

}  // namespace

std::vector<double> stationary_by_power_iteration(const std::vector<double>& rows, int64_t vocab,
                                                  int64_t contexts) {
  // A slightly lazy step pi <- 0.1 pi + 0.9 pi P has the same fixed point, but moves eigenvalues
  // near -1 or elsewhere on the unit circle (near-periodic chains, from tiny alphas) inside it.
  constexpr double kLazy = 0.1;
  const int64_t keep = contexts / vocab;  // a step keeps the context modulo this, shifted
  const double work = static_cast<double>(contexts) * static_cast<double>(vocab);
  const int64_t max_iterations =
      static_cast<int64_t>(std::clamp(kMaxPowerIterationWork / work, 100.0, 100000.0));
  std::vector<double> pi(static_cast<size_t>(contexts), 1.0 / static_cast<double>(contexts));
  std::vector<double> next(pi.size());
  double residual = INFINITY;
  for (int64_t iter = 0; iter < max_iterations && !(residual < kStationaryTolerance); ++iter) {
    for (int64_t c = 0; c < contexts; ++c) next[c] = kLazy * pi[c];
    for (int64_t c = 0; c < contexts; ++c) {
      const double w = (1.0 - kLazy) * pi[c];
      const double* row = rows.data() + c * vocab;
      double* dst = next.data() + (c % keep) * vocab;
      for (int64_t x = 0; x < vocab; ++x) dst[x] += w * row[x];
    }
    double change = 0.0;
    for (int64_t c = 0; c < contexts; ++c) change += std::fabs(next[c] - pi[c]);
    pi.swap(next);
    residual = change / (1.0 - kLazy);  // |pi P - pi|_1 of the previous iterate
  }
  if (!(residual < kStationaryTolerance)) {
    throw std::runtime_error("stationary distribution: power iteration over " +
                             std::to_string(contexts) + " contexts stopped at residual " +
                             std::to_string(residual) +
                             "; the chain mixes too slowly, raise its Dirichlet alpha");
  }
  double sum = 0.0;
  for (double p : pi) sum += p;
  for (double& p : pi) p /= sum;
  return pi;
}

std::vector<double> stationary_by_elimination(const std::vector<double>& rows, int64_t vocab,
                                              int64_t contexts) {
  // Spell the context chain out as a dense matrix a, then the Grassmann-Taksar-Heyman
  // elimination, which never subtracts and so stays accurate however slowly the chain mixes.
  const int64_t n = contexts, keep = contexts / vocab;
  std::vector<double> a(static_cast<size_t>(n * n), 0.0);
  for (int64_t c = 0; c < n; ++c) {
    for (int64_t x = 0; x < vocab; ++x) a[c * n + (c % keep) * vocab + x] = rows[c * vocab + x];
  }
  for (int64_t k = n - 1; k > 0; --k) {
    // Censor state k: route its exits to states < k (their sum taken directly, not as 1 - stay).
    double out = 0.0;
    for (int64_t j = 0; j < k; ++j) out += a[k * n + j];
    for (int64_t i = 0; i < k; ++i) a[i * n + k] /= out;
    for (int64_t i = 0; i < k; ++i) {
      const double via_k = a[i * n + k];
      for (int64_t j = 0; j < k; ++j) a[i * n + j] += via_k * a[k * n + j];
    }
  }
  std::vector<double> pi(static_cast<size_t>(n), 0.0);
  pi[0] = 1.0;
  double sum = 1.0;
  for (int64_t k = 1; k < n; ++k) {
    for (int64_t i = 0; i < k; ++i) pi[k] += pi[i] * a[i * n + k];
    sum += pi[k];
  }
  for (double& p : pi) p /= sum;
  return pi;
}

std::vector<double> stationary_distribution(const std::vector<double>& rows, int64_t vocab,
                                            int64_t contexts) {
  return contexts <= kMaxEliminationContexts ? stationary_by_elimination(rows, vocab, contexts)
                                             : stationary_by_power_iteration(rows, vocab, contexts);
}

MarkovSource::MarkovSource(int64_t vocab_size, int64_t order, double alpha, uint64_t seed)
    : vocab_(vocab_size), order_(order), alpha_(alpha), seed_(seed) {
  if (vocab_size < 2) {
    throw std::invalid_argument("data.vocab_size: expected >= 2, got " +
                                std::to_string(vocab_size));
  }
  if (order < 1) {
    throw std::invalid_argument("data.order: expected >= 1, got " + std::to_string(order));
  }
  if (!(alpha > 0.0) || !std::isfinite(alpha)) {
    throw std::invalid_argument("data.alpha: expected a finite value > 0, got " +
                                std::to_string(alpha));
  }
  // contexts = vocab^order, refusing tables past kMaxTableEntries before anything overflows.
  contexts_ = 1;
  for (int64_t j = 0; j < order; ++j) {
    if (contexts_ > kMaxTableEntries / vocab_size / vocab_size) {
      throw std::invalid_argument(
          "data.order: expected data.vocab_size^(data.order + 1) <= " +
          std::to_string(kMaxTableEntries) + " transition entries, got vocab_size " +
          std::to_string(vocab_size) + " and order " + std::to_string(order));
    }
    contexts_ *= vocab_size;
  }

  Rng rng(mix_seed(seed, kParameterStream));
  transition_ = sample_dirichlet_rows(rng, alpha, contexts_, vocab_);
  transition_cum_ = cumulative_rows(transition_, contexts_, vocab_);
  stationary_ = stationary_distribution(transition_, vocab_, contexts_);
  stationary_cum_ = cumulative_rows(stationary_, 1, contexts_);

  // Marginals of the first j tokens: sum the stationary context distribution over its last digits.
  prefix_marginals_.resize(static_cast<size_t>(order_));
  const std::vector<double>* finer = &stationary_;
  for (int64_t j = order_ - 1; j >= 0; --j) {
    std::vector<double>& m = prefix_marginals_[j];
    m.assign(finer->size() / vocab_, 0.0);
    for (size_t p = 0; p < m.size(); ++p) {
      for (int64_t x = 0; x < vocab_; ++x) m[p] += (*finer)[p * vocab_ + x];
    }
    finer = &m;
  }

  entropy_rate_ = 0.0;
  for (int64_t c = 0; c < contexts_; ++c) {
    entropy_rate_ += stationary_[c] * row_entropy(transition_.data() + c * vocab_, vocab_);
  }
}

void MarkovSource::window(Split split, uint64_t index, int64_t len, int32_t* out) const {
  if (len <= 0) return;
  Rng rng(mix_seed(seed_, static_cast<uint64_t>(split), index));
  int64_t context = sample_cumulative(stationary_cum_.data(), contexts_, rng.uniform());

  // The first `order` tokens are the start context's digits, oldest (most significant) first.
  const int64_t keep = contexts_ / vocab_;  // weight of a context's oldest digit
  int64_t digit_weight = keep;
  for (int64_t t = 0; t < std::min(order_, len); ++t) {
    out[t] = static_cast<int32_t>((context / digit_weight) % vocab_);
    digit_weight /= vocab_;
  }
  for (int64_t t = order_; t < len; ++t) {
    const int32_t x =
        sample_cumulative(transition_cum_.data() + context * vocab_, vocab_, rng.uniform());
    out[t] = x;
    // Drop the oldest digit (out[t - order]) and append x, without a division.
    context = (context - out[t - order_] * keep) * vocab_ + x;
  }
}

std::vector<double> MarkovSource::exact_conditionals(const int32_t* tokens, int64_t len) const {
  std::vector<double> rows(static_cast<size_t>(std::max<int64_t>(len, 0) * vocab_));
  const int64_t keep = contexts_ / vocab_;
  int64_t context = 0;  // packs the last min(t, order) tokens
  for (int64_t t = 0; t < len; ++t) {
    double* row = rows.data() + t * vocab_;
    if (t < order_) {
      // P(x_t | x_<t) = P(x_0..x_t) / P(x_0..x_{t-1}) under the stationary start.
      const std::vector<double>& finer = (t + 1 < order_) ? prefix_marginals_[t + 1] : stationary_;
      const double denom = prefix_marginals_[t][context];
      for (int64_t x = 0; x < vocab_; ++x) row[x] = finer[context * vocab_ + x] / denom;
    } else {
      const double* p = transition_.data() + context * vocab_;
      std::copy(p, p + vocab_, row);
    }
    const int32_t x = tokens[t];
    if (x < 0 || x >= vocab_) {
      throw std::invalid_argument("markov exact_conditionals: token " + std::to_string(t) + " is " +
                                  std::to_string(x) + ", expected in [0, " +
                                  std::to_string(vocab_) + ")");
    }
    context =
        (t < order_) ? context * vocab_ + x : (context - tokens[t - order_] * keep) * vocab_ + x;
  }
  return rows;
}

std::vector<double> MarkovSource::stationary_bigram() const {
  std::vector<double> joint(static_cast<size_t>(vocab_ * vocab_), 0.0);
  for (int64_t c = 0; c < contexts_; ++c) {
    const int64_t last = c % vocab_;  // the newest token of the context
    for (int64_t w = 0; w < vocab_; ++w)
      joint[last * vocab_ + w] += stationary_[c] * transition_[c * vocab_ + w];
  }
  return joint;
}

std::string MarkovSource::describe() const {
  std::ostringstream s;
  s << "markov(vocab=" << vocab_ << ", order=" << order_ << ", alpha=" << alpha_
    << ", seed=" << seed_ << ")";
  return s.str();
}

}  // namespace stoch::data
