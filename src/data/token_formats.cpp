#include "data/token_formats.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "core/errors.h"
#include "core/strings.h"
#include "core/whole_file.h"

namespace fs = std::filesystem;

namespace stoch::data {
namespace {

TokenDtype dtype_for_vocab(int64_t vocab) {
  return vocab <= 65536 ? TokenDtype::kU16 : TokenDtype::kU32;
}

// Header and ids in one durable write: the folder they go into is renamed into place as
// complete, so a write that fails (a full disk) must say so here, not in a destructor.
void write_file(const std::string& path, const void* header, size_t header_bytes,
                const std::vector<int32_t>& ids, size_t first, size_t n, TokenDtype dtype) {
  std::string bytes(header_bytes + n * dtype_bytes(dtype), '\0');
  if (header_bytes) std::memcpy(bytes.data(), header, header_bytes);
  char* body = bytes.data() + header_bytes;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t v = static_cast<uint32_t>(ids[first + i]);
    if (dtype == TokenDtype::kU16) {
      const uint16_t w = static_cast<uint16_t>(v);
      std::memcpy(body + 2 * i, &w, 2);
    } else {
      std::memcpy(body + 4 * i, &v, 4);
    }
  }
  write_file_durably(path, bytes);
}

// The shard files of one split in an llm.c folder, in name order: llm.c names them
// NAME_train_000000.bin (or NAME_train.bin for a single shard).
std::vector<std::string> llmc_shards(const std::string& dir, const std::string& split) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name.size() < 4 || name.substr(name.size() - 4) != ".bin") continue;
    const std::string stem = name.substr(0, name.size() - 4);
    const bool match =
        stem == split || stem.rfind(split + "_", 0) == 0 ||
        stem.find("_" + split + "_") != std::string::npos ||
        (stem.size() > split.size() + 1 &&
         stem.compare(stem.size() - split.size() - 1, std::string::npos, "_" + split) == 0);
    if (match) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

nlohmann::json read_meta(const std::string& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  try {
    return nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    throw InputError(str(path, ": malformed JSON: ", e.what()));
  }
}

// A BPE folder's tokenizer files, each checked to be there as its meta.json (`mpath`) says.
std::vector<std::string> checked_bpe_files(const std::string& dir, const std::string& mpath) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const char* name : {"vocab.json", "merges.txt"}) {
    files.push_back(dir + "/" + name);
    if (!fs::is_regular_file(files.back(), ec))
      throw InputError(str(files.back(), ": missing (", mpath, " says the ids are BPE tokens)"));
  }
  return files;
}

template <class T>
T meta_value(const nlohmann::json& meta, const std::string& path, const char* key, T fallback) {
  if (!meta.is_object() || !meta.contains(key)) return fallback;
  const auto& v = meta.at(key);
  // Checked before get<>(): JSON's numbers would otherwise be cast to T whatever their range.
  bool fits = false;
  if constexpr (std::is_same_v<T, std::string>) {
    fits = v.is_string();
  } else if constexpr (std::is_integral_v<T>) {
    fits = v.is_number_unsigned() ||
           (v.is_number_integer() && std::is_signed_v<T> && v.template get<int64_t>() >= 0);
    fits = fits && v.template get<uint64_t>() <= uint64_t{1} << 62;
  } else {
    fits = v.is_number();
  }
  if (!fits) throw InputError(str(path, ": ", key, ": unexpected value ", v.dump()));
  return v.template get<T>();
}

TokenFormat detect_format(const std::string& dir) {
  if (!llmc_shards(dir, "train").empty() && !fs::exists(dir + "/train.bin"))
    return TokenFormat::kLlmc;
  return TokenFormat::kNanogpt;
}

}  // namespace

TokenFormat parse_token_format(const std::string& name, const std::string& what) {
  if (name == "stoch") return TokenFormat::kStoch;
  if (name == "nanogpt") return TokenFormat::kNanogpt;
  if (name == "llmc") return TokenFormat::kLlmc;
  throw InputError(str(what, ": expected stoch, nanogpt or llmc, got \"", name, "\""));
}

const char* format_name(TokenFormat f) {
  return f == TokenFormat::kStoch ? "stoch" : f == TokenFormat::kNanogpt ? "nanogpt" : "llmc";
}

TokenShard map_llmc_shard(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(str(path, ": cannot open"));
  int32_t header[256] = {};
  in.read(reinterpret_cast<char*>(header), sizeof(header));
  if (in.gcount() != static_cast<std::streamsize>(sizeof(header)))
    throw InputError(str(path, ": ", in.gcount(), " bytes, shorter than llm.c's ", kLlmcHeaderBytes,
                         "-byte header"));
  TokenDtype dtype;
  if (header[0] == kLlmcMagicU16) {
    dtype = TokenDtype::kU16;
  } else if (header[0] == kLlmcMagicU32) {
    dtype = TokenDtype::kU32;
  } else {
    throw InputError(str(path, ": byte 0: magic ", header[0], ", expected ", kLlmcMagicU16,
                         " (llm.c, uint16 ids) or ", kLlmcMagicU32, " (llm.c, uint32 ids)"));
  }
  const int32_t version = dtype == TokenDtype::kU16 ? kLlmcVersionU16 : kLlmcVersionU32;
  if (header[1] != version)
    throw InputError(str(path, ": byte 4: version ", header[1], ", expected ", version,
                         " for magic ", header[0]));
  if (header[2] <= 0)
    throw InputError(str(path, ": byte 8: token count ", header[2], ", expected a positive count"));
  std::error_code ec;
  const uint64_t bytes = fs::file_size(path, ec);
  const uint64_t want = kLlmcHeaderBytes + static_cast<uint64_t>(header[2]) * dtype_bytes(dtype);
  if (bytes != want)
    throw InputError(str(path, ": byte 8: the header declares ", header[2], " tokens (", want,
                         " bytes with the header), but the file has ", bytes, " bytes"));
  return TokenShard::mapped(path, kLlmcHeaderBytes, dtype, static_cast<size_t>(header[2]));
}

TokenFolder open_token_folder(const std::string& dir, const std::string& format) {
  std::error_code ec;
  // A relative folder is read from the current directory, which for eval, sample or export
  // need not be the one the run was trained from.
  if (!fs::is_directory(dir, ec))
    throw InputError(str(dir, ": token folder not found",
                         fs::path(dir).is_relative()
                             ? str(" from ", fs::current_path(ec).string(),
                                   " (a relative data.dir is read from the current directory)")
                             : std::string(),
                         "; prepare one with `stoch data prepare`"));
  const std::string mpath = dir + "/meta.json";
  const nlohmann::json meta = read_meta(mpath);
  TokenFolder f;
  // A meta.json without "format" describes stoch's own layout (the key's default).
  f.format = meta.is_null()
                 ? detect_format(dir)
                 : parse_token_format(meta_value<std::string>(meta, mpath, "format", "stoch"),
                                      mpath + ": format");
  if (format != "auto" && parse_token_format(format, "data.format") != f.format)
    throw InputError(
        str("data.format: ", format, ", but ", dir, " holds ", format_name(f.format), " files"));
  const size_t want_train = meta_value<size_t>(meta, mpath, "train_tokens", 0);
  const size_t want_val = meta_value<size_t>(meta, mpath, "val_tokens", 0);
  if (f.format == TokenFormat::kLlmc) {
    for (const char* split : {"train", "val"}) {
      auto& shards = std::string(split) == "train" ? f.train : f.val;
      for (const auto& p : llmc_shards(dir, split)) shards.add(map_llmc_shard(p));
      if (shards.shard_count() == 0)
        throw InputError(str(dir, ": no llm.c ", split, " shards (expected files named like ",
                             split, "_000000.bin or NAME_", split, "_000000.bin)"));
    }
    if ((want_train && f.train.size() != want_train) || (want_val && f.val.size() != want_val))
      throw InputError(str(mpath, ": declares ", want_train, " train and ", want_val,
                           " val tokens, the shards hold ", f.train.size(), " and ", f.val.size()));
  } else {
    const std::string dt = meta_value<std::string>(meta, mpath, "dtype", "uint16");
    if (dt != "uint16" && !(dt == "uint32" && f.format == TokenFormat::kStoch))
      throw InputError(str(mpath, ": dtype: expected \"uint16\"",
                           f.format == TokenFormat::kStoch ? " or \"uint32\"" : "", ", got \"", dt,
                           "\""));
    const TokenDtype dtype = dt == "uint16" ? TokenDtype::kU16 : TokenDtype::kU32;
    f.train.add(TokenShard::mapped(dir + "/train.bin", 0, dtype, want_train));
    f.val.add(TokenShard::mapped(dir + "/val.bin", 0, dtype, want_val));
  }
  const int64_t declared = meta_value<int64_t>(meta, mpath, "vocab_size", 0);
  if (!meta.is_null() && declared < 1)
    throw InputError(str(mpath, ": vocab_size: expected a positive number"));
  f.vocab_size =
      declared ? declared : static_cast<int64_t>(std::max(f.train.max_id(), f.val.max_id())) + 1;
  if (declared) {  // a vocabulary from the ids themselves holds them all: no second pass
    f.train.check_ids_below(f.vocab_size, dir + "/train");
    f.val.check_ids_below(f.vocab_size, dir + "/val");
  }

  const std::string tok = meta_value<std::string>(meta, mpath, "tokenizer", "");
  if (tok == "byte") {
    f.tokenizer = "bytes";
  } else if (tok == "bpe") {
    checked_bpe_files(dir, mpath);
    f.tokenizer = dir;
  }
  const double val_bytes = meta_value<double>(meta, mpath, "val_bytes", 0.0);
  if (f.tokenizer == "bytes") f.val_bytes_per_token = 1.0;
  if (val_bytes > 0 && f.val.size() > 0) f.val_bytes_per_token = val_bytes / f.val.size();
  f.describe = str(format_name(f.format), "(", dir, ", ", f.train.size(), " train tokens in ",
                   f.train.shard_count(), f.train.shard_count() == 1 ? " file" : " files",
                   ", vocab ", f.vocab_size, ")");
  return f;
}

std::vector<std::string> bpe_tokenizer_files(const std::string& dir) {
  const std::string mpath = dir + "/meta.json";
  const nlohmann::json meta = read_meta(mpath);
  if (meta_value<std::string>(meta, mpath, "tokenizer", "") != "bpe") return {};
  return checked_bpe_files(dir, mpath);
}

std::vector<std::string> write_token_split(const std::string& dir, TokenFormat format,
                                           const std::string& split,
                                           const std::vector<int32_t>& ids, int64_t vocab_size,
                                           int64_t shard_tokens) {
  const TokenDtype dtype = dtype_for_vocab(vocab_size);
  if (format == TokenFormat::kNanogpt && dtype != TokenDtype::kU16)
    throw InputError(
        str("--format nanogpt: nanoGPT's files hold uint16 ids, too narrow for a "
            "vocabulary of ",
            vocab_size, " (use --format llmc or stoch)"));
  if (format != TokenFormat::kLlmc) {
    write_file(dir + "/" + split + ".bin", nullptr, 0, ids, 0, ids.size(), dtype);
    return {split + ".bin"};
  }
  std::vector<std::string> names;
  const size_t per = static_cast<size_t>(std::max<int64_t>(1, shard_tokens));
  for (size_t first = 0, k = 0; first < ids.size(); first += per, ++k) {
    const size_t n = std::min(per, ids.size() - first);
    int32_t header[256] = {};
    header[0] = dtype == TokenDtype::kU16 ? kLlmcMagicU16 : kLlmcMagicU32;
    header[1] = dtype == TokenDtype::kU16 ? kLlmcVersionU16 : kLlmcVersionU32;
    header[2] = static_cast<int32_t>(n);
    char name[64];
    std::snprintf(name, sizeof(name), "%s_%06zu.bin", split.c_str(), k);
    write_file(dir + "/" + name, header, sizeof(header), ids, first, n, dtype);
    names.push_back(name);
  }
  return names;
}

}  // namespace stoch::data
