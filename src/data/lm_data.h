// The `data` section of a language-model run and the token source it builds.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/config_schema.h"
#include "data/token_source.h"

namespace stoch::data {

// The registered token sources' names (registry<TokenSourceEntry>), for the data.source key.
std::vector<std::string> token_source_names();
// `data.source`'s doc: every registered source with its own doc.
const char* token_source_doc();

struct LmDataConfig {
  std::string source = "hmm";
  int64_t seed = 0;
  int64_t vocab_size = 32;
  int64_t order = 1;
  double alpha = 0.1;
  int64_t states = 8;
  double alpha_transition = 0.1;
  double alpha_emission = 0.1;
  int64_t entropy_tokens = 2'000'000;
  std::vector<std::string> files;
  std::string dir;
  std::string format = "auto";
  std::string sampling = "random";
  double val_fraction = 0.1;

  template <class V>
  void visit(V& v) {
    using config::Spec;
    v("source", source, token_source_doc(), Spec().one_of(token_source_names()));
    v("seed", seed,
      "seed of the data itself (source parameters, held-out set); run.seed orders training windows",
      Spec().at_least(0));
    v("vocab_size", vocab_size, "synthetic sources: number of distinct tokens",
      Spec().at_least(2).at_most(65536));
    v("order", order, "markov: tokens of context the chain conditions on",
      Spec().at_least(1).at_most(8));
    v("alpha", alpha, "markov: Dirichlet concentration of each transition row (small = peaked)",
      Spec().above(0));
    v("states", states, "hmm: hidden states", Spec().at_least(1).at_most(4096));
    v("alpha_transition", alpha_transition, "hmm: Dirichlet concentration of transition rows",
      Spec().above(0));
    v("alpha_emission", alpha_emission, "hmm: Dirichlet concentration of emission rows",
      Spec().above(0));
    v("entropy_tokens", entropy_tokens,
      "hmm: sequence length of the Monte Carlo entropy-rate estimate", Spec().at_least(1000));
    v("files", files, "text: input files, tokenised as bytes");
    v("dir", dir, "tokens: folder written by `stoch data prepare`, nanoGPT or llm.c");
    v("format", format,
      "tokens: the folder's format; auto reads its meta.json, else llm.c shards or nanoGPT's "
      "train.bin",
      Spec().one_of({"auto", "stoch", "nanogpt", "llmc"}));
    v("sampling", sampling,
      "text/tokens: how training windows are drawn: random (window starts drawn anywhere) or "
      "sequential (llm.c's cursor: each "
      "window starts where the last ended, wrapping at the end)",
      Spec().one_of({"random", "sequential"}));
    v("val_fraction", val_fraction, "text: tail of each file held out for validation",
      Spec().above(0).at_most(0.5));
  }
};

// Builds the configured source. `order_seed` (run.seed) orders training windows only.
// Throws InputError for missing files or inconsistent settings, naming the key.
std::unique_ptr<TokenSource> make_token_source(const LmDataConfig& cfg, uint64_t order_seed);

// A registry entry: `registry<TokenSourceEntry>().add("name", {...})`; data.source picks it.
struct TokenSourceEntry {
  std::string doc;
  std::function<std::unique_ptr<TokenSource>(const LmDataConfig&, uint64_t order_seed)> make;
  // The smallest vocabulary it can have when model.vocab_size is 0, known before any data is
  // read (memory estimates); 0: data.vocab_size.
  int64_t least_vocab = 0;
  // It reads a prepared folder (data.dir) that may carry the tokenizer's files.
  bool prepared_folder = false;
};

// The registry entry of data.source.
const TokenSourceEntry& token_source_entry(const LmDataConfig& cfg);

}  // namespace stoch::data
