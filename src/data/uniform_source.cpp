#include "data/uniform_source.h"

#include <cmath>

#include "core/rng.h"
#include "core/strings.h"

namespace stoch::data {

UniformSource::UniformSource(int64_t vocab_size, uint64_t seed) : vocab_(vocab_size), seed_(seed) {}

void UniformSource::window(Split split, uint64_t index, int64_t len, int32_t* out) const {
  Rng rng(mix_seed(seed_, static_cast<uint64_t>(split), index));
  for (int64_t t = 0; t < len; ++t)
    out[t] = static_cast<int32_t>(rng.below(static_cast<uint64_t>(vocab_)));
}

std::optional<double> UniformSource::entropy_rate_nats() const {
  return std::log(static_cast<double>(vocab_));
}

std::vector<double> UniformSource::exact_conditionals(const int32_t*, int64_t len) const {
  return std::vector<double>(static_cast<size_t>(len * vocab_), 1.0 / static_cast<double>(vocab_));
}

std::vector<double> UniformSource::stationary_bigram() const {
  if (vocab_ > 4096) return {};
  const double p = 1.0 / static_cast<double>(vocab_ * vocab_);
  return std::vector<double>(static_cast<size_t>(vocab_ * vocab_), p);
}

std::string UniformSource::describe() const {
  return stoch::str("uniform(vocab=", vocab_, ", seed=", seed_, ")");
}

}  // namespace stoch::data
