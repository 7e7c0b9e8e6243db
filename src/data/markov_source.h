// An order-k Markov chain over V tokens with Dirichlet-drawn transition rows: a token source whose
// entropy rate and per-position conditionals are known exactly, to judge what a model learned.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/token_source.h"

namespace stoch::data {

// Stationary distribution of an order-k chain over `contexts` = vocab^k contexts whose row-major
// `rows` (contexts x vocab) give P(x | context); context c followed by x becomes
// (c mod vocab^(k-1)) * vocab + x. An order-1 chain over S states is contexts == vocab == S.
// Up to 512 contexts: exact elimination. Beyond: power iteration.
std::vector<double> stationary_distribution(const std::vector<double>& rows, int64_t vocab,
                                            int64_t contexts);

// Power iteration until the L1 residual |pi P - pi| is below 1e-13; throws std::runtime_error
// when it cannot get there. Its error is about residual / spectral gap, so a chain that mixes
// very slowly can pass the test far from its fixed point; hence elimination for small chains.
std::vector<double> stationary_by_power_iteration(const std::vector<double>& rows, int64_t vocab,
                                                  int64_t contexts);

// Exact to rounding however slowly the chain mixes; O(contexts^3) time, O(contexts^2) memory.
std::vector<double> stationary_by_elimination(const std::vector<double>& rows, int64_t vocab,
                                              int64_t contexts);

class MarkovSource : public TokenSource {
 public:
  // Largest transition table (contexts x vocab entries) the source agrees to build.
  static constexpr int64_t kMaxTableEntries = int64_t{1} << 24;

  MarkovSource(int64_t vocab_size, int64_t order, double alpha, uint64_t seed);

  int64_t vocab_size() const override { return vocab_; }
  void window(Split split, uint64_t index, int64_t len, int32_t* out) const override;
  std::optional<double> entropy_rate_nats() const override { return entropy_rate_; }
  std::vector<double> exact_conditionals(const int32_t* tokens, int64_t len) const override;
  // sum over contexts c ending in v of pi_c P(w | c): exact for every order.
  std::vector<double> stationary_bigram() const override;
  std::string describe() const override;

  int64_t order() const { return order_; }
  int64_t num_contexts() const { return contexts_; }
  // Row c (of num_contexts()) is P(x_t = . | context c), where context c packs x_{t-k}..x_{t-1}
  // as base-V digits, oldest most significant.
  const std::vector<double>& transition() const { return transition_; }
  // The stationary distribution over contexts; each window starts from it.
  const std::vector<double>& stationary() const { return stationary_; }

 private:
  int64_t vocab_;
  int64_t order_;
  double alpha_;
  uint64_t seed_;
  int64_t contexts_;  // vocab^order
  std::vector<double> transition_;
  std::vector<double> transition_cum_;
  std::vector<double> stationary_;
  std::vector<double> stationary_cum_;
  // prefix_marginals_[j] = P(x_0..x_{j-1}) under the stationary start, packed like contexts,
  // for j = 0..order-1 (j = 0 is {1}; j = order would be stationary_ itself).
  std::vector<std::vector<double>> prefix_marginals_;
  double entropy_rate_;
};

}  // namespace stoch::data
