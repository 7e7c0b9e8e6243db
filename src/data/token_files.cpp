#include "data/token_files.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/errors.h"
#include "core/output_dir.h"
#include "core/rng.h"
#include "core/strings.h"

namespace fs = std::filesystem;

namespace stoch::data {
namespace {

std::string read_all(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw InputError(str(path, ": input file not found"));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(str(path, ": cannot read"));
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Splits each file's bytes into train and held-out tails.
void split_bytes(const std::vector<std::string>& files, double val_fraction,
                 std::vector<uint16_t>& train, std::vector<uint16_t>& val) {
  if (files.empty()) throw InputError("data: no input files given");
  if (!(val_fraction > 0.0 && val_fraction < 1.0))
    throw InputError(str("val fraction: expected a number in (0, 1), got ", val_fraction));
  for (const auto& f : files) {
    const std::string bytes = read_all(f);
    if (bytes.size() < 4) throw InputError(str(f, ": input file is empty or too short to split"));
    const size_t n_val = std::max<size_t>(1, static_cast<size_t>(bytes.size() * val_fraction));
    const size_t n_train = bytes.size() - n_val;
    for (size_t i = 0; i < bytes.size(); ++i)
      (i < n_train ? train : val).push_back(static_cast<unsigned char>(bytes[i]));
  }
}

void write_atomically(const std::string& path, const void* data, size_t n) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError(str(tmp, ": cannot write"));
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
    if (!out) throw std::runtime_error(str(tmp, ": write failed"));
  }
  fs::rename(tmp, path);
}

}  // namespace

PrepareReport prepare_token_files(const std::vector<std::string>& inputs,
                                  const std::string& out_dir, double val_fraction) {
  std::vector<uint16_t> train, val;
  split_bytes(inputs, val_fraction, train, val);
  make_output_dir(out_dir, "--out");
  nlohmann::json meta = {{"tokenizer", "byte"},      {"dtype", "uint16"},
                         {"vocab_size", 256},        {"train_tokens", train.size()},
                         {"val_tokens", val.size()}, {"val_fraction", val_fraction},
                         {"sources", inputs}};
  write_atomically(out_dir + "/train.bin", train.data(), train.size() * 2);
  write_atomically(out_dir + "/val.bin", val.data(), val.size() * 2);
  const std::string m = meta.dump(2) + "\n";
  write_atomically(out_dir + "/meta.json", m.data(), m.size());  // last: marks the folder complete
  return {static_cast<int64_t>(train.size()), static_cast<int64_t>(val.size())};
}

TokenSpan TokenSpan::owning(std::vector<uint16_t> v) {
  auto owner = std::make_shared<std::vector<uint16_t>>(std::move(v));
  return {owner, owner->data(), owner->size()};
}

TokenSpan TokenSpan::mapped(const std::string& path, size_t expected) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw InputError(str(path, ": token file not found"));
  const size_t bytes = fs::file_size(path);
  if (bytes % 2 != 0 || (expected && bytes / 2 != expected) || bytes == 0)
    throw InputError(str(path, ": expected ", expected, " uint16 tokens (", expected * 2,
                         " bytes), found ", bytes, " bytes"));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(str(path, ": cannot open"));
  void* p = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw InputError(str(path, ": cannot memory-map"));
  std::shared_ptr<const void> owner(
      p, [bytes](const void* q) { ::munmap(const_cast<void*>(q), bytes); });
  return {owner, static_cast<const uint16_t*>(p), bytes / 2};
}

std::vector<int32_t> read_token_file(const std::string& path) {
  const TokenSpan s = TokenSpan::mapped(path, 0);
  return std::vector<int32_t>(s.data, s.data + s.size);
}

TokenArraySource::TokenArraySource(TokenSpan train, TokenSpan val, int64_t vocab_size,
                                   uint64_t data_seed, uint64_t order_seed, std::string description)
    : train_(std::move(train)),
      val_(std::move(val)),
      vocab_(vocab_size),
      data_seed_(data_seed),
      order_seed_(order_seed),
      description_(std::move(description)) {}

int64_t TokenArraySource::size(Split split) const {
  return static_cast<int64_t>(split == Split::kTrain ? train_.size : val_.size);
}

void TokenArraySource::window(Split split, uint64_t index, int64_t len, int32_t* out) const {
  const auto& a = split == Split::kTrain ? train_ : val_;
  if (static_cast<int64_t>(a.size) < len)
    throw InputError(str("data: the ", split == Split::kTrain ? "train" : "val", " split has ",
                         a.size, " tokens, fewer than one window of ", len,
                         " (lower model.context or add data)"));
  const uint64_t seed =
      split == Split::kTrain ? mix_seed(data_seed_, 0, order_seed_) : mix_seed(data_seed_, 1);
  Rng rng(mix_seed(seed, index));
  const uint64_t start = rng.below(a.size - static_cast<uint64_t>(len) + 1);
  for (int64_t i = 0; i < len; ++i) out[i] = a.data[start + i];
}

std::unique_ptr<TokenArraySource> open_token_dir(const std::string& dir, uint64_t data_seed,
                                                 uint64_t order_seed) {
  const std::string mpath = dir + "/meta.json";
  std::ifstream in(mpath);
  if (!in)
    throw InputError(str(mpath, ": not found (prepare the folder with `stoch data prepare`)"));
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw InputError(str(mpath, ": malformed JSON: ", e.what()));
  }
  if (meta.value("dtype", "") != "uint16")
    throw InputError(str(mpath, ": dtype: expected \"uint16\", got ",
                         meta.value("dtype", std::string("nothing"))));
  const int64_t vocab = meta.value("vocab_size", 0);
  if (vocab < 1 || vocab > 65536) throw InputError(str(mpath, ": vocab_size: expected 1..65536"));
  auto train = TokenSpan::mapped(dir + "/train.bin", meta.value("train_tokens", size_t{0}));
  auto val = TokenSpan::mapped(dir + "/val.bin", meta.value("val_tokens", size_t{0}));
  for (const auto* a : {&train, &val})
    for (size_t i = 0; i < a->size; ++i)
      if (a->data[i] >= vocab)
        throw InputError(str(dir, ": token id ", a->data[i], " >= vocab_size ", vocab));
  return std::make_unique<TokenArraySource>(std::move(train), std::move(val), vocab, data_seed,
                                            order_seed, str("tokens(", dir, ")"));
}

std::unique_ptr<TokenArraySource> open_text_files(const std::vector<std::string>& files,
                                                  double val_fraction, uint64_t data_seed,
                                                  uint64_t order_seed) {
  std::vector<uint16_t> train, val;
  split_bytes(files, val_fraction, train, val);
  const std::string d =
      str("text(", files.size(), " files, ", train.size() + val.size(), " bytes)");
  return std::make_unique<TokenArraySource>(TokenSpan::owning(std::move(train)),
                                            TokenSpan::owning(std::move(val)), 256, data_seed,
                                            order_seed, d);
}

}  // namespace stoch::data
