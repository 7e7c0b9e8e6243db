// Independent uniform tokens: the throughput benchmarks' source for vocabularies far too large
// for a Markov table (GPT-2's 50304). Its entropy rate is ln V exactly, so a run on it still
// says how close the model is to the truth (it can only learn the marginal).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/token_source.h"

namespace stoch::data {

class UniformSource : public TokenSource {
 public:
  UniformSource(int64_t vocab_size, uint64_t seed);

  int64_t vocab_size() const override { return vocab_; }
  void window(Split split, uint64_t index, int64_t len, int32_t* out) const override;
  std::optional<double> entropy_rate_nats() const override;
  std::vector<double> exact_conditionals(const int32_t* tokens, int64_t len) const override;
  // Only for vocabularies whose V x V table stays small (up to 4096 tokens).
  std::vector<double> stationary_bigram() const override;
  std::string describe() const override;

 private:
  int64_t vocab_;
  uint64_t seed_;
};

}  // namespace stoch::data
