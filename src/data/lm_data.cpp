#include "data/lm_data.h"

#include "core/errors.h"
#include "core/registry.h"
#include "core/rng.h"
#include "core/strings.h"
#include "data/hmm_source.h"
#include "data/markov_source.h"
#include "data/token_files.h"
#include "data/uniform_source.h"

namespace stoch::data {
namespace {

// Synthetic sources draw train windows from a stream keyed by the run seed, so seeds see
// different samples of the same process, while held-out windows stay the same for every run.
class ReseededSource : public TokenSource {
 public:
  ReseededSource(std::unique_ptr<TokenSource> inner, uint64_t order_seed)
      : inner_(std::move(inner)), order_seed_(order_seed) {}
  int64_t vocab_size() const override { return inner_->vocab_size(); }
  void window(Split split, uint64_t index, int64_t len, int32_t* out) const override {
    // Train windows live far from the val stream's indices and differ per run seed.
    const uint64_t i = split == Split::kTrain ? mix_seed(order_seed_, index) : index;
    inner_->window(split, i, len, out);
  }
  std::optional<double> entropy_rate_nats() const override { return inner_->entropy_rate_nats(); }
  double entropy_rate_stderr() const override { return inner_->entropy_rate_stderr(); }
  std::vector<double> exact_conditionals(const int32_t* t, int64_t len) const override {
    return inner_->exact_conditionals(t, len);
  }
  std::vector<double> stationary_bigram() const override { return inner_->stationary_bigram(); }
  std::string describe() const override { return inner_->describe(); }
  const TokenSource& inner() const { return *inner_; }

 private:
  std::unique_ptr<TokenSource> inner_;
  uint64_t order_seed_;
};

uint64_t data_seed(const LmDataConfig& cfg) {
  return static_cast<uint64_t>(cfg.seed);
}

// A synthetic source, whose constructor reports bad parameters as std::invalid_argument.
std::unique_ptr<TokenSource> reseeded(const std::function<std::unique_ptr<TokenSource>()>& make,
                                      uint64_t order_seed) {
  try {
    return std::make_unique<ReseededSource>(make(), order_seed);
  } catch (const std::invalid_argument& e) {
    throw InputError(e.what());
  }
}

WindowOrder window_order(const LmDataConfig& cfg) {
  return cfg.sampling == "sequential" ? WindowOrder::kSequential : WindowOrder::kRandom;
}

const bool registered_hmm = registry<TokenSourceEntry>().add(
    "hmm", {"synthetic hidden Markov model with exact entropy rate",
            [](const LmDataConfig& cfg, uint64_t order_seed) -> std::unique_ptr<TokenSource> {
              return reseeded(
                  [&] {
                    return std::make_unique<HmmSource>(cfg.states, cfg.vocab_size,
                                                       cfg.alpha_transition, cfg.alpha_emission,
                                                       data_seed(cfg), cfg.entropy_tokens);
                  },
                  order_seed);
            }});

const bool registered_markov = registry<TokenSourceEntry>().add(
    "markov", {"synthetic Markov chain of `order` tokens with exact entropy rate",
               [](const LmDataConfig& cfg, uint64_t order_seed) -> std::unique_ptr<TokenSource> {
                 return reseeded(
                     [&] {
                       return std::make_unique<MarkovSource>(cfg.vocab_size, cfg.order, cfg.alpha,
                                                             data_seed(cfg));
                     },
                     order_seed);
               }});

const bool registered_uniform = registry<TokenSourceEntry>().add(
    "uniform",
    {"independent uniform tokens (benchmarks)",
     [](const LmDataConfig& cfg, uint64_t order_seed) -> std::unique_ptr<TokenSource> {
       return reseeded(
           [&] { return std::make_unique<UniformSource>(cfg.vocab_size, data_seed(cfg)); },
           order_seed);
     }});

const bool registered_text = registry<TokenSourceEntry>().add(
    "text", {"byte-level text files",
             [](const LmDataConfig& cfg, uint64_t order_seed) -> std::unique_ptr<TokenSource> {
               if (cfg.files.empty())
                 throw InputError("data.files: expected at least one text file for source text");
               return open_text_files(cfg.files, cfg.val_fraction, data_seed(cfg), order_seed,
                                      window_order(cfg));
             },
             /*least_vocab=*/256});

const bool registered_tokens = registry<TokenSourceEntry>().add(
    "tokens", {"a prepared token folder (stoch, nanoGPT or llm.c files)",
               [](const LmDataConfig& cfg, uint64_t order_seed) -> std::unique_ptr<TokenSource> {
                 if (cfg.dir.empty())
                   throw InputError("data.dir: expected a prepared token folder for source tokens");
                 return open_token_dir(cfg.dir, cfg.format, data_seed(cfg), order_seed,
                                       window_order(cfg));
               },
               /*least_vocab=*/2, /*prepared_folder=*/true});

}  // namespace

std::vector<std::string> token_source_names() {
  return registry<TokenSourceEntry>().names();
}

const char* token_source_doc() {
  static const std::string doc = "token source: " + registry<TokenSourceEntry>().describe();
  return doc.c_str();
}

const TokenSourceEntry& token_source_entry(const LmDataConfig& cfg) {
  return registry<TokenSourceEntry>().get(cfg.source, "data.source");
}

std::unique_ptr<TokenSource> make_token_source(const LmDataConfig& cfg, uint64_t order_seed) {
  return token_source_entry(cfg).make(cfg, order_seed);
}

}  // namespace stoch::data
