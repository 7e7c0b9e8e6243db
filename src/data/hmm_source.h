// A hidden Markov model with Dirichlet-drawn transition and emission rows: a token source whose
// Bayes-optimal conditionals are known exactly (forward filtering) and whose entropy rate is
// estimated once by Monte Carlo over long sampled sequences.
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "data/token_source.h"

namespace stoch::data {

class HmmSource : public TokenSource {
 public:
  static constexpr int64_t kDefaultEntropyTokens = 2'000'000;
  // The Monte Carlo tokens are split into this many independent sequences (filtered in
  // parallel); their spread gives the standard error.
  static constexpr int64_t kEntropyBlocks = 20;

  // entropy_tokens: how many tokens the entropy rate is estimated from (all blocks together).
  HmmSource(int64_t states, int64_t vocab_size, double alpha_transition, double alpha_emission,
            uint64_t seed, int64_t entropy_tokens = kDefaultEntropyTokens);

  int64_t vocab_size() const override { return vocab_; }
  void window(Split split, uint64_t index, int64_t len, int32_t* out) const override;
  // -1/n sum_b log p(block b) by the forward algorithm over kEntropyBlocks independent stationary
  // sequences of n / kEntropyBlocks tokens; computed on the first call (thread-safe) and cached.
  // Each block overestimates the rate by at most log(states) / block length in expectation
  // (the excess entropy of an HMM is at most H(S_0)): 4e-5 nats for 64 states and 2M tokens.
  std::optional<double> entropy_rate_nats() const override;
  // Standard error of entropy_rate_nats() from the spread of the independent blocks.
  double entropy_rate_stderr() const override;
  std::vector<double> exact_conditionals(const int32_t* tokens, int64_t len) const override;
  std::vector<double> stationary_bigram() const override;
  std::string describe() const override;

  // The Bayes-optimal loss of a window: sum over t of -log P(x_t | x_<t), in nats.
  double bayes_nll(const int32_t* tokens, int64_t len) const;

  int64_t num_states() const { return states_; }
  const std::vector<double>& transition() const { return transition_; }  // states x states
  const std::vector<double>& emission() const { return emission_; }      // states x vocab
  // Stationary distribution of the hidden chain; each window starts from it.
  const std::vector<double>& stationary() const { return stationary_; }

 private:
  // One step of the normalised forward filter. pred = P(s_t | x_<t); returns P(x_t | x_<t) and
  // writes P(s_{t+1} | x_<=t) into next.
  double filter_step(const double* pred, int32_t x, double* next) const;
  void check_token(const int32_t* tokens, int64_t t, const char* caller) const;
  // -log p(x_1..len) of Monte Carlo block `block`, sampled and filtered in one pass.
  double block_nll(int64_t block, int64_t len) const;
  void estimate_entropy_rate() const;

  int64_t states_;
  int64_t vocab_;
  double alpha_transition_;
  double alpha_emission_;
  uint64_t seed_;
  int64_t entropy_tokens_;
  std::vector<double> transition_;
  std::vector<double> transition_cum_;
  std::vector<double> emission_;
  std::vector<double> emission_cum_;
  std::vector<double> emission_by_token_;  // vocab x states, so a step reads one contiguous column
  std::vector<double> stationary_;
  std::vector<double> stationary_cum_;
  // The Monte Carlo filter runs in single precision on copies of the tables floored at 1e-30 (so
  // no filtered probability underflows), with transition rows padded with zeros to a multiple of
  // kLanes: several times faster, and its rounding (~1e-7 nats) is far below the standard error.
  static constexpr int64_t kLanes = 32;
  int64_t padded_states_;
  std::vector<float> transition_f_;         // states x padded_states_
  std::vector<float> emission_by_token_f_;  // vocab x states

  mutable std::once_flag entropy_once_;
  mutable double entropy_rate_ = 0.0;
  mutable double entropy_stderr_ = 0.0;
};

}  // namespace stoch::data
