// A prepared token folder: meta.json and the two splits' files, in stoch's, nanoGPT's or llm.c's
// layout (a split whose bytes start with an llm.c magic number is written as an llm.c shard).
// Parts: meta.json (absent when empty), train bytes, val bytes. An accepted folder is then read
// the way training reads it.
#include <cstring>
#include <nlohmann/json.hpp>

#include "data/token_files.h"
#include "fuzz_target.h"

namespace stoch::fuzz {
namespace {

bool llmc_bytes(const std::string& b) {
  if (b.size() < 4) return false;
  int32_t magic;
  std::memcpy(&magic, b.data(), 4);
  return magic == data::kLlmcMagicU16 || magic == data::kLlmcMagicU32;
}

std::string llmc_shard(int32_t magic, int32_t version, const std::vector<uint16_t>& ids) {
  int32_t header[256] = {};
  header[0] = magic;
  header[1] = version;
  header[2] = static_cast<int32_t>(ids.size());
  std::string out(reinterpret_cast<const char*>(header), sizeof header);
  out.append(reinterpret_cast<const char*>(ids.data()), ids.size() * 2);
  return out;
}

std::string u16(const std::vector<uint16_t>& ids) {
  return std::string(reinterpret_cast<const char*>(ids.data()), ids.size() * 2);
}

}  // namespace

void fuzz_one(const std::string& input) {
  const auto parts = split_parts(input, 3);
  const std::string dir = scratch_dir();
  if (!parts[0].empty()) write_file(dir + "/meta.json", parts[0]);
  write_file(dir + (llmc_bytes(parts[1]) ? "/train_000000.bin" : "/train.bin"), parts[1]);
  write_file(dir + (llmc_bytes(parts[2]) ? "/val_000000.bin" : "/val.bin"), parts[2]);
  const auto source = data::open_token_dir(dir, "auto", 1, 2);
  std::vector<int32_t> window(4);
  for (const auto split : {data::Split::kTrain, data::Split::kVal}) {
    const uint64_t n = source->size(split);
    const int64_t len = static_cast<int64_t>(std::min<uint64_t>(n, window.size()));
    if (len == 0) continue;
    for (uint64_t i = 0; i < 3; ++i) source->window(split, i, len, window.data());
    for (int64_t i = 0; i < len; ++i)
      if (window[i] < 0 || window[i] >= source->vocab_size()) std::abort();  // a checked id
  }
}

std::vector<std::string> fuzz_seeds() {
  const std::vector<uint16_t> train = {1, 2, 3, 4, 5, 6, 7, 8, 9}, val = {3, 1, 4, 1, 5};
  const nlohmann::json meta = {{"format", "stoch"}, {"dtype", "uint16"}, {"vocab_size", 256},
                               {"train_tokens", 9}, {"val_tokens", 5},   {"tokenizer", "byte"},
                               {"val_bytes", 5}};
  std::vector<uint32_t> wide = {70000, 1, 2};
  const std::string wide_bytes(reinterpret_cast<const char*>(wide.data()), wide.size() * 4);
  return {
      join_parts({meta.dump(), u16(train), u16(val)}),
      join_parts({"", u16(train), u16(val)}),  // nanoGPT: no meta.json
      join_parts({nlohmann::json{{"format", "nanogpt"}, {"vocab_size", 50257}}.dump(), u16(train),
                  u16(val)}),
      join_parts({nlohmann::json{{"format", "stoch"},
                                 {"dtype", "uint32"},
                                 {"vocab_size", 70001},
                                 {"train_tokens", 3},
                                 {"val_tokens", 3}}
                      .dump(),
                  wide_bytes, wide_bytes}),
      join_parts({"", llmc_shard(data::kLlmcMagicU16, data::kLlmcVersionU16, train),
                  llmc_shard(data::kLlmcMagicU16, data::kLlmcVersionU16, val)}),
      join_parts(
          {nlohmann::json{{"format", "llmc"}, {"vocab_size", 10}, {"train_tokens", 9}}.dump(),
           llmc_shard(data::kLlmcMagicU16, data::kLlmcVersionU16, train),
           llmc_shard(data::kLlmcMagicU16, data::kLlmcVersionU16, val)}),
  };
}

}  // namespace stoch::fuzz
