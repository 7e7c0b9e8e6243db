// Token arrays larger than memory: each file is memory-mapped (the kernel pages tokens in as
// windows touch them), and a split is the concatenation of any number of such shards.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace stoch::data {

enum class TokenDtype { kU16, kU32 };

// Bytes per token of a dtype.
size_t dtype_bytes(TokenDtype d);

// One shard's tokens: mapped from a file (after a header) or owned in memory.
struct TokenShard {
  std::shared_ptr<const void> owner;
  const unsigned char* data = nullptr;
  size_t count = 0;
  TokenDtype dtype = TokenDtype::kU16;
  std::string path;  // the file, for messages; empty when owned

  uint32_t at(size_t i) const;

  static TokenShard owning(std::vector<uint16_t> v);
  // Maps `path` and reads its tokens after `header_bytes`. `expected` (when nonzero) is the
  // token count the file must hold; InputError naming the file and the sizes otherwise.
  static TokenShard mapped(const std::string& path, size_t header_bytes, TokenDtype dtype,
                           size_t expected);
};

// A split: shards in order, addressed as one array.
class TokenShards {
 public:
  void add(TokenShard shard);
  uint64_t size() const { return total_; }
  size_t shard_count() const { return shards_.size(); }
  const TokenShard& shard(size_t i) const { return shards_[i]; }

  // Writes tokens [start, start + len) into out, reading across shard boundaries.
  void copy(uint64_t start, int64_t len, int32_t* out) const;

  // Throws InputError naming the shard file and token offset of the first id >= vocab.
  void check_ids_below(int64_t vocab, const std::string& what) const;

  // The largest id in the split (0 when empty).
  uint32_t max_id() const;

 private:
  std::vector<TokenShard> shards_;
  std::vector<uint64_t> starts_;  // starts_[i]: index of shard i's first token
  uint64_t total_ = 0;
};

}  // namespace stoch::data
