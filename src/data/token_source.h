// Where an LM task's tokens come from. Every window is a pure function of (split, index), so the
// data cursor stored in a checkpoint is just the number of windows consumed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace stoch::data {

enum class Split { kTrain = 0, kVal = 1 };

class TokenSource {
 public:
  virtual ~TokenSource() = default;

  virtual int64_t vocab_size() const = 0;

  // Writes `len` consecutive tokens of window `index` of `split` into out[0..len).
  // Must be a pure function of its arguments (and the source's construction parameters).
  virtual void window(Split split, uint64_t index, int64_t len, int32_t* out) const = 0;

  // The process's exact entropy rate in nats/token, when the source knows it.
  virtual std::optional<double> entropy_rate_nats() const { return std::nullopt; }

  // Standard error of entropy_rate_nats() when it is an estimate; 0 when exact or unknown.
  virtual double entropy_rate_stderr() const { return 0.0; }

  // Exact conditionals of a sequence drawn from this source, when the source knows them:
  // returns a len x vocab_size() row-major array whose row t is P(x_t = . | x_0..x_{t-1})
  // (row 0 is the distribution of the first token of a window). Empty when unknown.
  virtual std::vector<double> exact_conditionals(const int32_t* tokens, int64_t len) const {
    (void)tokens;
    (void)len;
    return {};
  }

  // The stationary joint of two consecutive tokens, when the source knows it: a vocab_size()^2
  // row-major array whose entry (v, w) is P(x_t = v, x_{t+1} = w) inside a window. The
  // information surplus's Bayes baseline, H(x_{t+1} | x_t), comes from it. Empty when unknown.
  virtual std::vector<double> stationary_bigram() const { return {}; }

  // Bytes of text per token in the held-out split when the tokens encode text (1 for bytes), so
  // that bits per byte = loss in bits / this; 0 when they do not.
  virtual double val_bytes_per_token() const { return 0.0; }

  // The tokenizer that made the ids: "bytes", a folder holding vocab.json + merges.txt, or ""
  // when there is none (synthetic sources, foreign token files).
  virtual std::string tokenizer() const { return ""; }

  // A one-line description for logs ("hmm(states=8, vocab=32, seed=1)").
  virtual std::string describe() const = 0;
};

}  // namespace stoch::data
