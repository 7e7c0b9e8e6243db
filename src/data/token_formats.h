// Folders of prepared tokens in the formats the field uses, read and written:
//   stoch   train.bin, val.bin: raw little-endian ids (uint16, or uint32 above 65536 ids)
//   nanogpt train.bin, val.bin: raw uint16 ids, as nanoGPT's prepare.py writes them
//   llmc    train_NNNNNN.bin, val_NNNNNN.bin shards with llm.c's 1024-byte header (256 int32:
//           magic 20240520 version 1 for uint16 ids, magic 20240801 version 7 for uint32 ids,
//           then the token count)
// stoch adds meta.json (tokenizer, vocabulary, counts, bytes) to every folder it writes, and the
// tokenizer's vocab.json + merges.txt when the ids are BPE tokens. Folders written by nanoGPT
// or llm.c themselves have no meta.json; their vocabulary is then the largest id + 1.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/token_shards.h"

namespace stoch::data {

enum class TokenFormat { kStoch, kNanogpt, kLlmc };

TokenFormat parse_token_format(const std::string& name, const std::string& what);
const char* format_name(TokenFormat f);

// llm.c's shard header.
inline constexpr size_t kLlmcHeaderBytes = 256 * 4;
inline constexpr int32_t kLlmcMagicU16 = 20240520, kLlmcVersionU16 = 1;
inline constexpr int32_t kLlmcMagicU32 = 20240801, kLlmcVersionU32 = 7;

// Maps one llm.c shard after checking its header; InputError naming the file and the byte offset
// of the bad field.
TokenShard map_llmc_shard(const std::string& path);

struct TokenFolder {
  TokenFormat format = TokenFormat::kStoch;
  TokenShards train, val;
  int64_t vocab_size = 0;
  std::string tokenizer;           // "bytes", the folder itself (BPE files inside), or ""
  double val_bytes_per_token = 0;  // 0 when unknown
  std::string describe;
};

// Opens a prepared folder. `format` is "auto" or a format name that the folder must have.
// Every id is checked against the vocabulary; InputError naming the file otherwise.
TokenFolder open_token_folder(const std::string& dir, const std::string& format);

// The tokenizer files beside the ids of token folder `dir` (vocab.json, merges.txt) when its
// meta.json says the ids are BPE tokens, InputError naming one that is missing; none for byte
// ids or a folder without meta.json. Reads nothing but meta.json.
std::vector<std::string> bpe_tokenizer_files(const std::string& dir);

// Writes one split's ids in `format` into `dir` (llmc: shards of at most shard_tokens ids).
// Returns the file names written.
std::vector<std::string> write_token_split(const std::string& dir, TokenFormat format,
                                           const std::string& split,
                                           const std::vector<int32_t>& ids, int64_t vocab_size,
                                           int64_t shard_tokens);

}  // namespace stoch::data
