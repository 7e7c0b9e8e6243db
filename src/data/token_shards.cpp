#include "data/token_shards.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>

#include "core/errors.h"
#include "core/strings.h"

namespace fs = std::filesystem;

namespace stoch::data {

size_t dtype_bytes(TokenDtype d) {
  return d == TokenDtype::kU16 ? 2 : 4;
}

uint32_t TokenShard::at(size_t i) const {
  // Token files are little-endian, as are the machines stoch runs on.
  if (dtype == TokenDtype::kU16) {
    uint16_t v;
    std::memcpy(&v, data + 2 * i, 2);
    return v;
  }
  uint32_t v;
  std::memcpy(&v, data + 4 * i, 4);
  return v;
}

TokenShard TokenShard::owning(std::vector<uint16_t> v) {
  auto owner = std::make_shared<std::vector<uint16_t>>(std::move(v));
  TokenShard s;
  s.owner = owner;
  s.data = reinterpret_cast<const unsigned char*>(owner->data());
  s.count = owner->size();
  return s;
}

TokenShard TokenShard::mapped(const std::string& path, size_t header_bytes, TokenDtype dtype,
                              size_t expected) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw InputError(str(path, ": token file not found"));
  const size_t bytes = fs::file_size(path, ec);
  const size_t width = dtype_bytes(dtype);
  if (ec || bytes <= header_bytes || (bytes - header_bytes) % width != 0 ||
      (expected && (bytes - header_bytes) / width != expected))
    throw InputError(str(path, ": expected ", expected ? str(expected) : std::string("some"),
                         " tokens of ", width, " bytes after a ", header_bytes,
                         "-byte header, found ", bytes, " bytes"));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw InputError(str(path, ": cannot open"));
  void* p = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw InputError(str(path, ": cannot memory-map"));
  TokenShard s;
  s.owner = std::shared_ptr<const void>(
      p, [bytes](const void* q) { ::munmap(const_cast<void*>(q), bytes); });
  s.data = static_cast<const unsigned char*>(p) + header_bytes;
  s.count = (bytes - header_bytes) / width;
  s.dtype = dtype;
  s.path = path;
  return s;
}

void TokenShards::add(TokenShard shard) {
  starts_.push_back(total_);
  total_ += shard.count;
  shards_.push_back(std::move(shard));
}

void TokenShards::copy(uint64_t start, int64_t len, int32_t* out) const {
  // The shard holding `start`: the last one whose first token is at or before it.
  size_t s = static_cast<size_t>(std::upper_bound(starts_.begin(), starts_.end(), start) -
                                 starts_.begin()) -
             1;
  uint64_t pos = start - starts_[s];
  for (int64_t i = 0; i < len; ++i) {
    while (pos >= shards_[s].count) {  // also skips empty shards
      ++s;
      pos = 0;
    }
    out[i] = static_cast<int32_t>(shards_[s].at(pos++));
  }
}

void TokenShards::check_ids_below(int64_t vocab, const std::string& what) const {
  for (const auto& sh : shards_)
    for (size_t i = 0; i < sh.count; ++i)
      if (sh.at(i) >= static_cast<uint64_t>(vocab))
        throw InputError(str(sh.path.empty() ? what : sh.path, ": token ", i, " is id ", sh.at(i),
                             ", expected ids below the vocabulary size ", vocab));
}

uint32_t TokenShards::max_id() const {
  uint32_t m = 0;
  for (const auto& sh : shards_)
    for (size_t i = 0; i < sh.count; ++i) m = std::max(m, sh.at(i));
  return m;
}

}  // namespace stoch::data
