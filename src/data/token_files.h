// Byte-level tokenisation and token files: a flat little-endian array of uint16 token ids
// (train.bin, val.bin) plus meta.json naming the tokenizer and dtype, as nanoGPT and llm.c do,
// memory-mapped for reading.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/token_source.h"

namespace stoch::data {

struct PrepareReport {
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
};

// Reads the input files, tokenises them as bytes, holds out the last `val_fraction` of each
// file's tokens for validation, and writes out_dir/{train.bin,val.bin,meta.json}. Files are
// written under temporary names and renamed, so a failure leaves no half-written output.
// Throws InputError naming a missing or empty input, or a bad fraction.
PrepareReport prepare_token_files(const std::vector<std::string>& inputs,
                                  const std::string& out_dir, double val_fraction);

// Reads a token file written by prepare_token_files (any dtype its meta names).
std::vector<int32_t> read_token_file(const std::string& path);

// Windows sampled uniformly from two token arrays, at offsets that are pure functions of
// (seed, split, index). Validation windows ignore the run seed so every run sees the same ones.
// A read-only array of uint16 tokens, memory-mapped from a file or owned in memory.
struct TokenSpan {
  std::shared_ptr<const void> owner;
  const uint16_t* data = nullptr;
  size_t size = 0;

  static TokenSpan owning(std::vector<uint16_t> v);
  static TokenSpan mapped(const std::string& path, size_t expected_tokens);
};

class TokenArraySource : public TokenSource {
 public:
  TokenArraySource(TokenSpan train, TokenSpan val, int64_t vocab_size, uint64_t data_seed,
                   uint64_t order_seed, std::string description);

  int64_t vocab_size() const override { return vocab_; }
  void window(Split split, uint64_t index, int64_t len, int32_t* out) const override;
  std::string describe() const override { return description_; }
  int64_t size(Split split) const;

 private:
  TokenSpan train_, val_;
  int64_t vocab_;
  uint64_t data_seed_, order_seed_;
  std::string description_;
};

// Opens a folder written by prepare_token_files; throws InputError naming the bad file.
std::unique_ptr<TokenArraySource> open_token_dir(const std::string& dir, uint64_t data_seed,
                                                 uint64_t order_seed);

// Tokenises text files in memory (bytes), holding out the last val_fraction of each.
std::unique_ptr<TokenArraySource> open_text_files(const std::vector<std::string>& files,
                                                  double val_fraction, uint64_t data_seed,
                                                  uint64_t order_seed);

}  // namespace stoch::data
