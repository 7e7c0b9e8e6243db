// Preparing token folders from text (bytes or a BPE tokenizer, in stoch's, nanoGPT's or llm.c's
// format: data/token_formats.h) and the token source that reads them, memory-mapped.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/token_formats.h"
#include "data/token_source.h"

namespace stoch::data {

struct PrepareOptions {
  std::vector<std::string> inputs;
  std::string out;
  double val_fraction = 0.1;
  std::string tokenizer = "bytes";     // "bytes" or a folder with vocab.json + merges.txt
  std::string format = "stoch";        // stoch | nanogpt | llmc
  int64_t shard_tokens = 100'000'000;  // llmc: ids per shard (llm.c's FineWeb uses 10^8)
};

struct PrepareReport {
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
  int64_t vocab_size = 0;
  size_t files = 0;
};

// Tokenises each input, holds out the last `val_fraction` of each file's ids for validation,
// and writes the folder. Everything is written into a sibling staging folder renamed at the end,
// so a failure leaves nothing behind; an existing non-empty --out is refused. Throws InputError
// naming a missing or empty input, a bad option or tokenizer file.
PrepareReport prepare_token_files(const PrepareOptions& opt);

// The ids of one split of a prepared folder (any format), for tests and tools.
std::vector<int32_t> read_token_split(const std::string& dir, Split split);

// Order in which training windows visit the tokens.
enum class WindowOrder {
  kRandom,      // window i starts at a position drawn from (seed, i): every window equally likely
  kSequential,  // window i starts at i * (len - 1), wrapping at the end: llm.c's cursor
};

// Windows of two token splits, each a pure function of (seed, split, index), so a checkpoint's
// data cursor is the number of windows consumed and resuming is exact. Validation windows ignore
// the run seed so every run sees the same ones.
class TokenArraySource : public TokenSource {
 public:
  TokenArraySource(TokenFolder folder, uint64_t data_seed, uint64_t order_seed, WindowOrder order);

  int64_t vocab_size() const override { return f_.vocab_size; }
  void window(Split split, uint64_t index, int64_t len, int32_t* out) const override;
  std::string describe() const override { return f_.describe; }
  double val_bytes_per_token() const override { return f_.val_bytes_per_token; }
  std::string tokenizer() const override { return f_.tokenizer; }
  uint64_t size(Split split) const;

 private:
  TokenFolder f_;
  uint64_t data_seed_, order_seed_;
  WindowOrder order_;
};

// Opens a prepared folder; `format` is "auto" or the format it must have.
std::unique_ptr<TokenArraySource> open_token_dir(const std::string& dir, const std::string& format,
                                                 uint64_t data_seed, uint64_t order_seed,
                                                 WindowOrder order = WindowOrder::kRandom);

// Tokenises text files in memory as bytes, holding out the last val_fraction of each.
std::unique_ptr<TokenArraySource> open_text_files(const std::vector<std::string>& files,
                                                  double val_fraction, uint64_t data_seed,
                                                  uint64_t order_seed,
                                                  WindowOrder order = WindowOrder::kRandom);

}  // namespace stoch::data
