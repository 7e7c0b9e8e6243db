// A BPE tokenizer folder (vocab.json + merges.txt, as Hugging Face's tokenizers writes them),
// then text encoded with it and decoded back. Parts: vocab.json, merges.txt, text.
#include <cstdlib>

#include "data/tokenizer/bpe_files.h"
#include "data/tokenizer/tokenizer.h"
#include "data/tokenizer/word_counts.h"
#include "fuzz_target.h"

namespace stoch::fuzz {

void fuzz_one(const std::string& input) {
  const auto parts = split_parts(input, 3);
  const std::string dir = scratch_dir();
  write_file(dir + "/vocab.json", parts[0]);
  write_file(dir + "/merges.txt", parts[1]);
  const auto tokenizer = data::load_tokenizer(dir);
  std::vector<int32_t> ids;
  tokenizer->encode(parts[2], ids);
  for (const int32_t id : ids)
    if (id < 0 || id >= tokenizer->vocab_size()) std::abort();
  (void)tokenizer->decode(ids.data(), ids.size());
}

std::vector<std::string> fuzz_seeds() {
  const std::string text =
      "The quick brown fox jumps over the lazy dog. It's 2026, isn't it?\n"
      "  tabs\tand    spaces, caf\xc3\xa9, \xe6\x97\xa5\xe6\x9c\xac, emoji \xf0\x9f\x99\x82\n";
  data::WordCounts words;
  data::count_words_in(text + text, words);
  std::vector<std::string> seeds;
  for (const int64_t size : {256, 270, 300}) {
    data::BpeTrainOptions options;
    options.vocab_size = size;
    options.min_frequency = 1;
    if (size == 300) options.special_tokens = {"<|endoftext|>"};
    const std::string dir = scratch_dir();
    data::write_bpe_files(dir, data::train_bpe(words, options));
    seeds.push_back(
        join_parts({read_file(dir + "/vocab.json"), read_file(dir + "/merges.txt"), text}));
  }
  return seeds;
}

}  // namespace stoch::fuzz
