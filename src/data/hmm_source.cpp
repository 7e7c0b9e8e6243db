#include "data/hmm_source.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "core/cpus.h"
#include "core/rng.h"
#include "data/dirichlet.h"
#include "data/markov_source.h"

namespace stoch::data {

namespace {

// Stream tags that keep parameter and Monte Carlo draws apart from the windows' (split, index).
constexpr uint64_t kParameterStream = 0x686D6D706172ull;  // "hmmpar"
constexpr uint64_t kEntropyStream = 0x686D6D656E74ull;    // "hmment"

// Single-precision copy of a probability, floored far above float's underflow.
float to_float_floored(double p) {
  return static_cast<float>(std::max(p, 1e-30));
}

}  // namespace

HmmSource::HmmSource(int64_t states, int64_t vocab_size, double alpha_transition,
                     double alpha_emission, uint64_t seed, int64_t entropy_tokens)
    : states_(states),
      vocab_(vocab_size),
      alpha_transition_(alpha_transition),
      alpha_emission_(alpha_emission),
      seed_(seed),
      entropy_tokens_(entropy_tokens) {
  // Upper bounds only guard against tables that could not be allocated.
  if (states < 1 || states > 4096) {
    throw std::invalid_argument("data.states: expected in [1, 4096], got " +
                                std::to_string(states));
  }
  if (vocab_size < 2 || vocab_size > (int64_t{1} << 25) / states) {
    throw std::invalid_argument("data.vocab_size: expected in [2, " +
                                std::to_string((int64_t{1} << 25) / states) + "] (at most 2^25 " +
                                "emission entries for " + std::to_string(states) +
                                " states), got " + std::to_string(vocab_size));
  }
  if (!(alpha_transition > 0.0) || !std::isfinite(alpha_transition)) {
    throw std::invalid_argument("data.alpha_transition: expected a finite value > 0, got " +
                                std::to_string(alpha_transition));
  }
  if (!(alpha_emission > 0.0) || !std::isfinite(alpha_emission)) {
    throw std::invalid_argument("data.alpha_emission: expected a finite value > 0, got " +
                                std::to_string(alpha_emission));
  }
  if (entropy_tokens < kEntropyBlocks) {
    throw std::invalid_argument(
        "data.entropy_tokens: expected >= " + std::to_string(kEntropyBlocks) + ", got " +
        std::to_string(entropy_tokens));
  }

  Rng rng(mix_seed(seed, kParameterStream));
  transition_ = sample_dirichlet_rows(rng, alpha_transition, states_, states_);
  emission_ = sample_dirichlet_rows(rng, alpha_emission, states_, vocab_);
  transition_cum_ = cumulative_rows(transition_, states_, states_);
  emission_cum_ = cumulative_rows(emission_, states_, vocab_);
  emission_by_token_.resize(emission_.size());
  for (int64_t s = 0; s < states_; ++s) {
    for (int64_t x = 0; x < vocab_; ++x) {
      emission_by_token_[x * states_ + s] = emission_[s * vocab_ + x];
    }
  }
  stationary_ = stationary_distribution(transition_, states_, states_);
  stationary_cum_ = cumulative_rows(stationary_, 1, states_);

  padded_states_ = (states_ + kLanes - 1) / kLanes * kLanes;
  transition_f_.assign(static_cast<size_t>(states_ * padded_states_), 0.0f);
  emission_by_token_f_.resize(emission_by_token_.size());
  for (int64_t s = 0; s < states_; ++s) {
    for (int64_t r = 0; r < states_; ++r) {
      transition_f_[s * padded_states_ + r] = to_float_floored(transition_[s * states_ + r]);
    }
  }
  for (size_t i = 0; i < emission_by_token_.size(); ++i) {
    emission_by_token_f_[i] = to_float_floored(emission_by_token_[i]);
  }
}

void HmmSource::window(Split split, uint64_t index, int64_t len, int32_t* out) const {
  if (len <= 0) return;
  Rng rng(mix_seed(seed_, static_cast<uint64_t>(split), index));
  int64_t s = sample_cumulative(stationary_cum_.data(), states_, rng.uniform());
  for (int64_t t = 0;; ++t) {
    out[t] = sample_cumulative(emission_cum_.data() + s * vocab_, vocab_, rng.uniform());
    if (t + 1 == len) break;
    s = sample_cumulative(transition_cum_.data() + s * states_, states_, rng.uniform());
  }
}

double HmmSource::filter_step(const double* pred, int32_t x, double* next) const {
  // next = (pred .* e_x) T, unnormalised. T's rows sum to 1, so its total is P(x_t | x_<t);
  // dividing by that total (not by a separately computed one) keeps the filter normalised to
  // rounding at every step however long the sequence.
  const double* e = emission_by_token_.data() + x * states_;
  std::fill(next, next + states_, 0.0);
  for (int64_t s = 0; s < states_; ++s) {
    const double w = pred[s] * e[s];
    const double* row = transition_.data() + s * states_;
    for (int64_t r = 0; r < states_; ++r) next[r] += w * row[r];
  }
  double c = 0.0;
  for (int64_t r = 0; r < states_; ++r) c += next[r];
  const double inv_c = 1.0 / c;
  for (int64_t r = 0; r < states_; ++r) next[r] *= inv_c;
  return c;
}

void HmmSource::check_token(const int32_t* tokens, int64_t t, const char* caller) const {
  if (tokens[t] < 0 || tokens[t] >= vocab_) {
    throw std::invalid_argument(std::string("hmm ") + caller + ": token " + std::to_string(t) +
                                " is " + std::to_string(tokens[t]) + ", expected in [0, " +
                                std::to_string(vocab_) + ")");
  }
}

std::vector<double> HmmSource::exact_conditionals(const int32_t* tokens, int64_t len) const {
  std::vector<double> rows(static_cast<size_t>(std::max<int64_t>(len, 0) * vocab_));
  std::vector<double> pred = stationary_, next(static_cast<size_t>(states_));
  for (int64_t t = 0; t < len; ++t) {
    check_token(tokens, t, "exact_conditionals");
    // P(x_t = . | x_<t) = sum_s P(s_t = s | x_<t) E[s][.]
    double* row = rows.data() + t * vocab_;
    for (int64_t s = 0; s < states_; ++s) {
      const double* e = emission_.data() + s * vocab_;
      for (int64_t x = 0; x < vocab_; ++x) row[x] += pred[s] * e[x];
    }
    filter_step(pred.data(), tokens[t], next.data());
    pred.swap(next);
  }
  return rows;
}

double HmmSource::bayes_nll(const int32_t* tokens, int64_t len) const {
  std::vector<double> pred = stationary_, next(static_cast<size_t>(states_));
  double nll = 0.0;
  for (int64_t t = 0; t < len; ++t) {
    check_token(tokens, t, "bayes_nll");
    nll -= std::log(filter_step(pred.data(), tokens[t], next.data()));
    pred.swap(next);
  }
  return nll;
}

double HmmSource::block_nll(int64_t block, int64_t len) const {
  Rng rng(mix_seed(seed_, kEntropyStream, static_cast<uint64_t>(block)));
  const int64_t S = states_, P = padded_states_;
  std::vector<float> pred(static_cast<size_t>(P), 0.0f), w(pred.size());
  for (int64_t r = 0; r < S; ++r) pred[r] = static_cast<float>(stationary_[r]);
  int64_t s = sample_cumulative(stationary_cum_.data(), S, rng.uniform());
  double nll = 0.0;
  for (int64_t t = 0; t < len; ++t) {
    const int32_t x = sample_cumulative(emission_cum_.data() + s * vocab_, vocab_, rng.uniform());
    s = sample_cumulative(transition_cum_.data() + s * S, S, rng.uniform());

    const float* e = emission_by_token_f_.data() + x * S;
    for (int64_t r = 0; r < S; ++r) w[r] = pred[r] * e[r];
    // pred = w T, kLanes columns at a time with the partial sums held in an array that, fully
    // unrolled, lives in vector registers: this loop is nearly all of the start-up cost.
    float total = 0.0f;
    for (int64_t r = 0; r < P; r += kLanes) {
      float acc[kLanes] = {};
      for (int64_t q = 0; q < S; ++q) {
        const float wq = w[q];
        const float* row = transition_f_.data() + q * P + r;
#pragma GCC unroll 32
        for (int64_t j = 0; j < kLanes; ++j) acc[j] += wq * row[j];
      }
#pragma GCC unroll 32
      for (int64_t j = 0; j < kLanes; ++j) {
        pred[r + j] = acc[j];
        total += acc[j];
      }
    }
    // T's rows sum to 1, so the total is P(x_t | x_<t) (the floors add under 1e-28).
    nll -= std::log(static_cast<double>(total));
    const float inv_total = 1.0f / total;
    for (int64_t r = 0; r < P; ++r) pred[r] *= inv_total;
  }
  return nll;
}

void HmmSource::estimate_entropy_rate() const {
  // Independent blocks: a pure function of the seed whatever the number of threads, and a standard
  // error from genuinely independent estimates.
  std::vector<double> nll(static_cast<size_t>(kEntropyBlocks));
  auto block_len = [this](int64_t b) {
    return entropy_tokens_ * (b + 1) / kEntropyBlocks - entropy_tokens_ * b / kEntropyBlocks;
  };
  const int64_t threads = std::clamp<int64_t>(usable_cpus(), 1, kEntropyBlocks);
  auto worker = [&](int64_t first) {
    for (int64_t b = first; b < kEntropyBlocks; b += threads) nll[b] = block_nll(b, block_len(b));
  };
  std::vector<std::thread> pool;
  for (int64_t i = 1; i < threads; ++i) pool.emplace_back(worker, i);
  worker(0);  // the calling thread takes a share too
  for (std::thread& th : pool) th.join();

  double total = 0.0, mean = 0.0, var = 0.0;
  std::vector<double> rate(nll.size());
  for (int64_t b = 0; b < kEntropyBlocks; ++b) {
    total += nll[b];
    rate[b] = nll[b] / static_cast<double>(block_len(b));
    mean += rate[b] / kEntropyBlocks;
  }
  for (double r : rate) var += (r - mean) * (r - mean) / (kEntropyBlocks - 1);
  entropy_rate_ = total / static_cast<double>(entropy_tokens_);
  entropy_stderr_ = std::sqrt(var / kEntropyBlocks);
}

std::optional<double> HmmSource::entropy_rate_nats() const {
  std::call_once(entropy_once_, [this] { estimate_entropy_rate(); });
  return entropy_rate_;
}

double HmmSource::entropy_rate_stderr() const {
  std::call_once(entropy_once_, [this] { estimate_entropy_rate(); });
  return entropy_stderr_;
}

std::vector<double> HmmSource::stationary_bigram() const {
  const int64_t S = states_, V = vocab_;
  // P(v, w) = sum_s pi_s E[s, v] sum_s' T[s, s'] E[s', w]: emit v, move, emit w.
  std::vector<double> next_emission(static_cast<size_t>(S * V), 0.0);  // sum_s' T[s,s'] E[s',w]
  for (int64_t s = 0; s < S; ++s)
    for (int64_t s2 = 0; s2 < S; ++s2)
      for (int64_t w = 0; w < V; ++w)
        next_emission[s * V + w] += transition_[s * S + s2] * emission_[s2 * V + w];
  std::vector<double> joint(static_cast<size_t>(V * V), 0.0);
  for (int64_t s = 0; s < S; ++s)
    for (int64_t v = 0; v < V; ++v) {
      const double pv = stationary_[s] * emission_[s * V + v];
      for (int64_t w = 0; w < V; ++w) joint[v * V + w] += pv * next_emission[s * V + w];
    }
  return joint;
}

std::string HmmSource::describe() const {
  std::ostringstream s;
  s << "hmm(states=" << states_ << ", vocab=" << vocab_ << ", alpha_t=" << alpha_transition_
    << ", alpha_e=" << alpha_emission_ << ", seed=" << seed_ << ")";
  return s.str();
}

}  // namespace stoch::data
