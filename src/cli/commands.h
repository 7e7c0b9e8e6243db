// The `stoch` subcommands. Each returns the process exit code; InputError escapes to main,
// which prints it as one line and exits 2.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stoch::cli {

struct TrainArgs {
  std::string config;
  std::vector<std::string> sets;
  std::string run_dir;
  int64_t nproc = 1;  // data-parallel ranks started on this machine
};
int train(const TrainArgs& a);

struct ResumeArgs {
  std::string run_dir;
  std::vector<std::string> sets;
  int64_t nproc = 1;
};
int resume(const ResumeArgs& a);

struct ConfigArgs {
  std::string config;
  std::vector<std::string> sets;
  bool no_docs = false;
};
int print_config(const ConfigArgs& a);

struct EvalArgs {
  std::string run_dir;
  int64_t checkpoint = -1;        // -1: newest complete
  std::vector<std::string> sets;  // for this evaluation only; the run's files stay as they are
};
int eval(const EvalArgs& a);

struct SampleArgs {
  std::string run_dir;
  std::string prompt;
  int64_t max_tokens = 200;
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  int64_t seed = 0;
  int64_t checkpoint = -1;
  bool speculative = false;
  int64_t draft = 4;
};
int sample(const SampleArgs& a);

struct ExportArgs {
  std::string run_dir;
  int64_t checkpoint = -1;  // -1: newest complete
  std::string format;       // hf-gpt2
  std::string out;
};
int export_model(const ExportArgs& a);

struct PrepareArgs {
  std::vector<std::string> inputs;
  std::string out;
  double val_fraction = 0.1;
  std::string tokenizer = "bytes";
  std::string format = "stoch";
  int64_t shard_tokens = 100'000'000;
};
int data_prepare(const PrepareArgs& a);

struct TokenizerTrainArgs {
  std::vector<std::string> inputs;
  int64_t vocab_size = 0;
  std::string out;
  std::vector<std::string> specials;
  int64_t min_frequency = 2;  // as Hugging Face's ByteLevelBPETokenizer.train
};
int tokenizer_train(const TokenizerTrainArgs& a);

struct TokenizerCodeArgs {
  std::string tokenizer;
  std::string input;    // empty: stdin
  bool timing = false;  // encode: log the encoding throughput
};
int tokenizer_encode(const TokenizerCodeArgs& a);
int tokenizer_decode(const TokenizerCodeArgs& a);

}  // namespace stoch::cli
