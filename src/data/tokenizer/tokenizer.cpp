#include "data/tokenizer/tokenizer.h"

#include "core/errors.h"
#include "core/strings.h"
#include "data/tokenizer/bpe_files.h"
#include "data/tokenizer/bpe_tokenizer.h"

namespace stoch::data {
namespace {

// Each byte is its own token.
class ByteTokenizer : public Tokenizer {
 public:
  int64_t vocab_size() const override { return 256; }
  void encode(std::string_view text, std::vector<int32_t>& out) const override {
    for (unsigned char c : text) out.push_back(c);
  }
  std::string decode(const int32_t* ids, size_t n) const override {
    std::string text(n, '\0');
    for (size_t i = 0; i < n; ++i) {
      if (ids[i] < 0 || ids[i] > 255)
        throw InputError(str("token id ", ids[i], " is not a byte (tokenizer bytes)"));
      text[i] = static_cast<char>(ids[i]);
    }
    return text;
  }
  std::string describe() const override { return "bytes"; }
  std::string dir() const override { return ""; }
};

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec) {
  if (spec == "bytes") return std::make_unique<ByteTokenizer>();
  std::string dir = spec;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return std::make_unique<BpeTokenizer>(read_bpe_files(dir), dir);
}

}  // namespace stoch::data
