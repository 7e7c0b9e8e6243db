#include "data/tokenizer/bpe_tokenizer.h"

#include <algorithm>
#include <atomic>
#include <unordered_map>
#include <unordered_set>

#include "core/errors.h"
#include "core/strings.h"
#include "data/tokenizer/byte_level.h"
#include "data/tokenizer/pre_tokenizer.h"

namespace stoch::data {

// Pieces already encoded on this thread, for the tokenizer named `owner` (a thread-local cache
// keeps encode() const and safe to call from several threads at once).
struct PieceCache {
  static constexpr size_t kMaxPieces = 1 << 20;
  static constexpr size_t kMaxPieceBytes = 256;
  static constexpr size_t kMaxArenaBytes = size_t{64} << 20;
  uint64_t owner = 0;
  // piece -> (offset in ids, count); a piece of one token keeps its id in place of the offset.
  StringMap<std::pair<uint32_t, uint32_t>> index{1 << 12};
  std::vector<int32_t> ids;

  static PieceCache& for_tokenizer(uint64_t owner);
};

PieceCache& PieceCache::for_tokenizer(uint64_t owner) {
  thread_local PieceCache cache;
  if (cache.owner != owner) {
    cache = PieceCache();
    cache.owner = owner;
  }
  return cache;
}

namespace {

std::atomic<uint64_t> next_instance{1};

// One symbol of a piece being merged; merged-away symbols have len 0.
struct Symbol {
  uint32_t id;
  int32_t prev, next;
  uint32_t len;
};

struct Candidate {
  uint32_t rank;
  uint32_t pos;
  uint32_t merged;
  bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
};

}  // namespace

BpeTokenizer::BpeTokenizer(const BpeFiles& files, std::string dir)
    : dir_(std::move(dir)), instance_(next_instance++), merges_(files.merges.size() + 1) {
  const std::string vocab_path = dir_ + "/vocab.json";
  const std::string merges_path = dir_ + "/merges.txt";
  std::unordered_map<std::string, int32_t> id_of;
  int64_t max_id = -1;
  for (const auto& [token, id] : files.vocab) {
    id_of[token] = static_cast<int32_t>(id);
    max_id = std::max(max_id, id);
  }
  if (max_id < 0) throw InputError(str(vocab_path, ": the vocabulary is empty"));
  bytes_of_id_.resize(max_id + 1);
  known_id_.assign(max_id + 1, false);

  for (int b = 0; b < 256; ++b) {
    auto it = id_of.find(byte_level_char(static_cast<uint8_t>(b)));
    if (it == id_of.end())
      throw InputError(str(vocab_path, ": no token for byte ", b, " ('",
                           byte_level_char(static_cast<uint8_t>(b)),
                           "'); a byte-level vocabulary has all 256"));
    byte_id_[b] = it->second;
  }

  std::unordered_set<std::string> made_by_merges;
  for (size_t rank = 0; rank < files.merges.size(); ++rank) {
    const auto& [a, b] = files.merges[rank];
    const std::string merged = a + b;
    for (const std::string* t : {&a, &b, &merged})
      if (!id_of.count(*t))
        throw InputError(str(merges_path, ":", files.merge_lines[rank], ": token '", *t,
                             "' is not in vocab.json"));
    merges_[pair_key(id_of[a], id_of[b])] = {static_cast<uint32_t>(rank),
                                             static_cast<uint32_t>(id_of[merged])};
    made_by_merges.insert(merged);
  }

  for (const auto& [token, id] : files.vocab) {
    known_id_[id] = true;
    const std::string bytes = from_byte_level(token);
    const bool is_byte =
        bytes.size() == 1 && token == byte_level_char(static_cast<uint8_t>(bytes[0]));
    if (is_byte || made_by_merges.count(token) || token.empty()) {
      bytes_of_id_[id] = bytes;
    } else {
      bytes_of_id_[id] = token;  // a special token stands for its own text
      specials_.push_back(token);
      special_ids_.push_back(static_cast<int32_t>(id));
    }
  }
}

std::string BpeTokenizer::describe() const {
  return str("bpe(", dir_, ", vocab ", vocab_size(), ")");
}

void BpeTokenizer::encode(std::string_view text, std::vector<int32_t>& out) const {
  if (specials_.empty()) return encode_ordinary(text, out);
  // Special tokens are cut out first, leftmost match first, the longest at one position.
  std::vector<size_t> next(specials_.size(), 0);
  for (size_t k = 0; k < specials_.size(); ++k) next[k] = text.find(specials_[k]);
  size_t pos = 0;
  while (true) {
    size_t best = std::string_view::npos, best_k = 0;
    for (size_t k = 0; k < specials_.size(); ++k) {
      if (next[k] < pos) next[k] = text.find(specials_[k], pos);
      if (next[k] < best || (next[k] == best && next[k] != std::string_view::npos &&
                             specials_[k].size() > specials_[best_k].size())) {
        best = next[k];
        best_k = k;
      }
    }
    if (best == std::string_view::npos) return encode_ordinary(text.substr(pos), out);
    encode_ordinary(text.substr(pos, best - pos), out);
    out.push_back(special_ids_[best_k]);
    pos = best + specials_[best_k].size();
  }
}

void BpeTokenizer::encode_ordinary(std::string_view text, std::vector<int32_t>& out) const {
  PieceCache& cache = PieceCache::for_tokenizer(instance_);
  for (size_t i = 0; i < text.size();) {
    const size_t j = pre_token_end(text, i);
    encode_piece(text.substr(i, j - i), out, cache);
    i = j;
  }
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out,
                                PieceCache& cache) const {
  if (piece.size() == 1) {
    out.push_back(byte_id_[static_cast<uint8_t>(piece[0])]);
    return;
  }
  const uint64_t h = hash_bytes(piece.data(), piece.size());
  if (const auto* hit = cache.index.find(piece, h)) {
    if (hit->second == 1) {
      out.push_back(static_cast<int32_t>(hit->first));
    } else {
      const int32_t* ids = cache.ids.data() + hit->first;
      out.insert(out.end(), ids, ids + hit->second);
    }
    return;
  }
  const size_t before = out.size();
  merge_piece(piece, out);
  const auto count = static_cast<uint32_t>(out.size() - before);
  if (piece.size() <= PieceCache::kMaxPieceBytes && cache.index.size() < PieceCache::kMaxPieces &&
      cache.index.arena_bytes() < PieceCache::kMaxArenaBytes) {
    if (count == 1) {
      cache.index.get(piece, h) = {static_cast<uint32_t>(out[before]), 1};
    } else {
      cache.index.get(piece, h) = {static_cast<uint32_t>(cache.ids.size()), count};
      cache.ids.insert(cache.ids.end(), out.begin() + before, out.end());
    }
  }
}

// `tokenizers`' order: always the pair of lowest rank, the leftmost of equal ones; a queued pair
// is skipped when its symbols have changed since.
void BpeTokenizer::merge_piece(std::string_view piece, std::vector<int32_t>& out) const {
  thread_local std::vector<Symbol> sym;
  thread_local std::vector<Candidate> queue;
  const auto n = static_cast<int32_t>(piece.size());
  sym.resize(n);
  queue.clear();
  const auto push = [&](int32_t pos) {
    if (const Merge* m = merges_.find(pair_key(sym[pos].id, sym[sym[pos].next].id))) {
      queue.push_back({m->rank, static_cast<uint32_t>(pos), m->merged});
      std::push_heap(queue.begin(), queue.end(), std::greater<>());
    }
  };
  for (int32_t i = 0; i < n; ++i)
    sym[i] = {static_cast<uint32_t>(byte_id_[static_cast<uint8_t>(piece[i])]), i - 1,
              i + 1 < n ? i + 1 : -1, 1};
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!queue.empty()) {
    std::pop_heap(queue.begin(), queue.end(), std::greater<>());
    const Candidate top = queue.back();
    queue.pop_back();
    Symbol& s = sym[top.pos];
    if (s.len == 0 || s.next < 0) continue;
    Symbol& right = sym[s.next];
    const Merge* m = merges_.find(pair_key(s.id, right.id));
    if (!m || m->merged != top.merged) continue;
    s.id = top.merged;
    s.len += right.len;
    right.len = 0;
    s.next = right.next;
    if (s.next >= 0) sym[s.next].prev = static_cast<int32_t>(top.pos);
    if (s.prev >= 0) push(s.prev);
    if (s.next >= 0) push(static_cast<int32_t>(top.pos));
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(static_cast<int32_t>(sym[i].id));
}

std::string BpeTokenizer::decode(const int32_t* ids, size_t n) const {
  std::string text;
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size() || !known_id_[ids[i]])
      throw InputError(str("token id ", ids[i], " is not in the vocabulary of ", describe()));
    text += bytes_of_id_[ids[i]];
  }
  return text;
}

}  // namespace stoch::data
