#include "data/token_files.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/disk_space.h"
#include "core/errors.h"
#include "core/rng.h"
#include "core/staged_folder.h"
#include "core/strings.h"
#include "core/whole_file.h"
#include "data/tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace stoch::data {
namespace {

std::string read_all(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw InputError(str(path, ": input file not found"));
  auto text = read_whole_file(path);
  if (!text) throw InputError(str(path, ": cannot read"));
  return std::move(*text);
}

void check_fraction(double val_fraction) {
  if (!(val_fraction > 0.0 && val_fraction < 1.0))
    throw InputError(str("val fraction: expected a number in (0, 1), got ", val_fraction));
}

// Each file's ids split into a train head and a held-out tail.
struct SplitIds {
  std::vector<int32_t> train, val;
  int64_t train_bytes = 0, val_bytes = 0;
};

SplitIds tokenize_and_split(const std::vector<std::string>& files, double val_fraction,
                            const Tokenizer& tok) {
  if (files.empty()) throw InputError("data: no input files given");
  check_fraction(val_fraction);
  SplitIds s;
  std::vector<int32_t> ids;
  for (const auto& f : files) {
    const std::string text = read_all(f);
    ids.clear();
    tok.encode(text, ids);
    if (ids.size() < 4) throw InputError(str(f, ": input file is empty or too short to split"));
    const size_t n_val = std::max<size_t>(1, static_cast<size_t>(ids.size() * val_fraction));
    const size_t n_train = ids.size() - n_val;
    s.train.insert(s.train.end(), ids.begin(), ids.begin() + n_train);
    s.val.insert(s.val.end(), ids.begin() + n_train, ids.end());
    // The held-out bytes are those its ids decode to, so bits per byte is exact.
    const int64_t vb = static_cast<int64_t>(tok.decode(ids.data() + n_train, n_val).size());
    s.val_bytes += vb;
    s.train_bytes += static_cast<int64_t>(text.size()) - vb;
  }
  return s;
}

}  // namespace

PrepareReport prepare_token_files(const PrepareOptions& opt) {
  const TokenFormat format = parse_token_format(opt.format, "--format");
  const auto tok = load_tokenizer(opt.tokenizer);
  StagedFolder::check_target(opt.out, "--out " + opt.out);
  SplitIds ids = tokenize_and_split(opt.inputs, opt.val_fraction, *tok);

  // Everything goes into a staging folder beside --out, renamed into place once complete.
  StagedFolder staged(fs::path(opt.out).lexically_normal().string(), "--out " + opt.out);
  const std::string& stage = staged.path();
  // The free space is read before the staging folder is removed and frees its share.
  noting_free_space(stage, [&] {
    const auto train_files =
        write_token_split(stage, format, "train", ids.train, tok->vocab_size(), opt.shard_tokens);
    const auto val_files =
        write_token_split(stage, format, "val", ids.val, tok->vocab_size(), opt.shard_tokens);
    const bool bpe = !tok->dir().empty();
    if (bpe)
      for (const char* f : {"vocab.json", "merges.txt"})
        copy_file_durably(tok->dir() + "/" + f, stage + "/" + f);
    nlohmann::json meta = {{"format", format_name(format)},
                           {"tokenizer", bpe ? "bpe" : "byte"},
                           {"tokenizer_source", bpe ? tok->dir() : "bytes"},
                           {"dtype", tok->vocab_size() <= 65536 ? "uint16" : "uint32"},
                           {"vocab_size", tok->vocab_size()},
                           {"train_tokens", ids.train.size()},
                           {"val_tokens", ids.val.size()},
                           {"train_bytes", ids.train_bytes},
                           {"val_bytes", ids.val_bytes},
                           {"train_files", train_files},
                           {"val_files", val_files},
                           {"val_fraction", opt.val_fraction},
                           {"sources", opt.inputs}};
    // Paths need not be UTF-8 (JSON text must be): such bytes are written as U+FFFD, since the
    // sources are a note for people, read by nothing.
    write_file_durably(stage + "/meta.json",
                       meta.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
    staged.commit();
  });
  return {static_cast<int64_t>(ids.train.size()), static_cast<int64_t>(ids.val.size()),
          tok->vocab_size(), opt.inputs.size()};
}

std::vector<int32_t> read_token_split(const std::string& dir, Split split) {
  const TokenFolder f = open_token_folder(dir, "auto");
  const TokenShards& s = split == Split::kTrain ? f.train : f.val;
  std::vector<int32_t> out(s.size());
  s.copy(0, static_cast<int64_t>(s.size()), out.data());
  return out;
}

TokenArraySource::TokenArraySource(TokenFolder folder, uint64_t data_seed, uint64_t order_seed,
                                   WindowOrder order)
    : f_(std::move(folder)), data_seed_(data_seed), order_seed_(order_seed), order_(order) {}

uint64_t TokenArraySource::size(Split split) const {
  return split == Split::kTrain ? f_.train.size() : f_.val.size();
}

void TokenArraySource::window(Split split, uint64_t index, int64_t len, int32_t* out) const {
  const TokenShards& a = split == Split::kTrain ? f_.train : f_.val;
  const uint64_t n = a.size(), L = static_cast<uint64_t>(len);
  if (n < L)
    throw InputError(str("data: the ", split == Split::kTrain ? "train" : "val", " split has ", n,
                         " tokens, fewer than one window of ", len,
                         " (lower model.context or add data)"));
  uint64_t start;
  // The order is training's: held-out windows are drawn alike whichever it is (with the cursor
  // they covered only the start of the val split, and changed with data.sampling).
  if (order_ == WindowOrder::kSequential && split == Split::kTrain) {
    // Consecutive windows share one token (the last target is the next window's first input),
    // so every token is predicted once per pass.
    const uint64_t stride = L > 1 ? L - 1 : 1;
    const uint64_t per_pass = (n - L) / stride + 1;
    start = (index % per_pass) * stride;
  } else {
    const uint64_t seed =
        split == Split::kTrain ? mix_seed(data_seed_, 0, order_seed_) : mix_seed(data_seed_, 1);
    Rng rng(mix_seed(seed, index));
    start = rng.below(n - L + 1);
  }
  a.copy(start, len, out);
}

std::unique_ptr<TokenArraySource> open_token_dir(const std::string& dir, const std::string& format,
                                                 uint64_t data_seed, uint64_t order_seed,
                                                 WindowOrder order) {
  return std::make_unique<TokenArraySource>(open_token_folder(dir, format), data_seed, order_seed,
                                            order);
}

std::unique_ptr<TokenArraySource> open_text_files(const std::vector<std::string>& files,
                                                  double val_fraction, uint64_t data_seed,
                                                  uint64_t order_seed, WindowOrder order) {
  if (files.empty()) throw InputError("data: no input files given");
  check_fraction(val_fraction);
  std::vector<uint16_t> train, val;
  for (const auto& f : files) {
    const std::string bytes = read_all(f);
    if (bytes.size() < 4) throw InputError(str(f, ": input file is empty or too short to split"));
    const size_t n_val = std::max<size_t>(1, static_cast<size_t>(bytes.size() * val_fraction));
    const size_t n_train = bytes.size() - n_val;
    for (size_t i = 0; i < bytes.size(); ++i)
      (i < n_train ? train : val).push_back(static_cast<unsigned char>(bytes[i]));
  }
  TokenFolder f;
  f.describe = str("text(", files.size(), " files, ", train.size() + val.size(), " bytes)");
  f.train.add(TokenShard::owning(std::move(train)));
  f.val.add(TokenShard::owning(std::move(val)));
  f.vocab_size = 256;
  f.tokenizer = "bytes";
  f.val_bytes_per_token = 1.0;
  return std::make_unique<TokenArraySource>(std::move(f), data_seed, order_seed, order);
}

}  // namespace stoch::data
