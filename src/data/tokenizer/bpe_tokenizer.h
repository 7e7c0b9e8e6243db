// Encoding and decoding with a byte-level BPE (GPT-2's scheme, and that of Hugging Face
// `tokenizers`' ByteLevelBPETokenizer): special tokens are cut out of the text literally first,
// the rest is pre-tokenised with GPT-2's regex, and each piece's bytes are merged pair by pair,
// the pair of lowest rank first (leftmost on ties). Pieces seen before come from a cache.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/tokenizer/bpe_files.h"
#include "data/tokenizer/flat_maps.h"
#include "data/tokenizer/tokenizer.h"

namespace stoch::data {

struct PieceCache;

class BpeTokenizer : public Tokenizer {
 public:
  // Throws InputError naming the file and line of a merge whose tokens are not in vocab.json,
  // or vocab.json when it lacks a byte's token. Vocabulary entries that are neither a byte nor
  // made by a merge are special tokens (GPT-2's <|endoftext|>, `tokenizers`' special tokens).
  BpeTokenizer(const BpeFiles& files, std::string dir);

  int64_t vocab_size() const override { return static_cast<int64_t>(bytes_of_id_.size()); }
  void encode(std::string_view text, std::vector<int32_t>& out) const override;
  std::string decode(const int32_t* ids, size_t n) const override;
  std::string describe() const override;
  std::string dir() const override { return dir_; }

  const std::vector<std::string>& special_tokens() const { return specials_; }
  const std::vector<int32_t>& special_ids() const { return special_ids_; }  // in the same order

 private:
  struct Merge {
    uint32_t rank;
    uint32_t merged;
  };

  void encode_ordinary(std::string_view text, std::vector<int32_t>& out) const;
  void encode_piece(std::string_view piece, std::vector<int32_t>& out, PieceCache& cache) const;
  void merge_piece(std::string_view piece, std::vector<int32_t>& out) const;

  std::string dir_;
  uint64_t instance_;  // names this tokenizer's cache among the thread's caches
  int32_t byte_id_[256];
  PairMap<Merge> merges_;
  std::vector<std::string> bytes_of_id_;  // what each id decodes to
  std::vector<bool> known_id_;
  std::vector<std::string> specials_;
  std::vector<int32_t> special_ids_;
};

}  // namespace stoch::data
