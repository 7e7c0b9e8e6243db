// The GPT-2 / Hugging Face pair of files: vocab.json (token -> id, an object in id order) and
// merges.txt ("#version: 0.2", then one "left right" pair per line in rank order). Read and
// written byte for byte as `tokenizers`' save_model writes them.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "data/tokenizer/bpe_trainer.h"

namespace stoch::data {

struct BpeFiles {
  std::vector<std::pair<std::string, int64_t>> vocab;  // (token, id) in id order
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<int64_t> merge_lines;  // merges[i] is on line merge_lines[i] of merges.txt
};

// Reads DIR/vocab.json and DIR/merges.txt; throws InputError naming the file (and line).
BpeFiles read_bpe_files(const std::string& dir);

// Writes DIR/vocab.json and DIR/merges.txt (DIR must exist), both or neither: a failed write
// (a full disk) leaves an older pair as it was.
void write_bpe_files(const std::string& dir, const BpeVocabulary& v);

}  // namespace stoch::data
