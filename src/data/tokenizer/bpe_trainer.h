// Byte-level BPE training with the rules of Hugging Face `tokenizers`' BpeTrainer, so that both
// learn the same merges from the same files: special tokens take the first ids, then the 256
// byte-level characters in code point order; each step merges the most frequent pair (ties: the
// smaller pair of ids), until the vocabulary has vocab_size tokens or no pair occurs
// min_frequency times.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/tokenizer/word_counts.h"

namespace stoch::data {

struct BpeTrainOptions {
  int64_t vocab_size = 30000;
  int64_t min_frequency = 2;  // ByteLevelBPETokenizer.train's default
  std::vector<std::string> special_tokens;
  int threads = 2;  // for counting words
};

// A trained vocabulary: tokens in id order (byte-level strings; special tokens as written) and
// the merges in rank order.
struct BpeVocabulary {
  std::vector<std::string> tokens;
  std::vector<std::pair<std::string, std::string>> merges;
};

BpeVocabulary train_bpe(const WordCounts& words, const BpeTrainOptions& options);

// Counts the words of `files` and trains on them.
BpeVocabulary train_bpe(const std::vector<std::string>& files, const BpeTrainOptions& options);

}  // namespace stoch::data
