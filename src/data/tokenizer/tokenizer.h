// Text to token ids and back: raw bytes (vocabulary 256) or a GPT-2-style byte-level BPE loaded
// from a GPT-2 / Hugging Face pair of files (vocab.json + merges.txt).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace stoch::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  virtual int64_t vocab_size() const = 0;

  // Appends the ids of `text` to `out`. Any bytes are accepted, including invalid UTF-8, and
  // decode(encode(x)) == x.
  virtual void encode(std::string_view text, std::vector<int32_t>& out) const = 0;

  // The bytes of the given ids; throws InputError for an id outside the vocabulary.
  virtual std::string decode(const int32_t* ids, size_t n) const = 0;

  // One line for logs and meta files: "bytes" or "bpe(DIR, vocab 4096)".
  virtual std::string describe() const = 0;

  // The folder holding vocab.json and merges.txt; empty for bytes.
  virtual std::string dir() const = 0;
};

// "bytes", or a folder holding vocab.json and merges.txt in the GPT-2 format. Throws InputError
// naming the file (and line) when a file is missing or malformed.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec);

}  // namespace stoch::data
