// The first step of BPE training: how often each pre-token ("word") occurs in the input files.
// Each line (with its line ending) is pre-tokenised on its own, as Hugging Face `tokenizers`
// does when it trains from files, so both see the same words.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/tokenizer/flat_maps.h"

namespace stoch::data {

using WordCounts = StringMap<int64_t>;

// Counts the pre-tokens of `files` (raw bytes, keys not yet byte-level) on `threads` threads.
// Throws InputError naming a file that cannot be read.
WordCounts count_words(const std::vector<std::string>& files, int threads = 2);

// Adds the pre-tokens of `text`'s lines to `counts`.
void count_words_in(std::string_view text, WordCounts& counts);

}  // namespace stoch::data
