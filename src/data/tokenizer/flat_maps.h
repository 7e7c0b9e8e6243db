// Open-addressing hash maps for the BPE hot loops: pairs of token ids (one 64-bit key), and byte
// strings kept in one arena. No per-entry allocation, one probe sequence through one array.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stoch::data {

inline uint64_t pair_key(uint32_t a, uint32_t b) {
  return (uint64_t{a} << 32) | b;
}

inline uint64_t mix64(uint64_t h) {
  h ^= h >> 32;
  h *= 0xD6E8FEB86659FD93ull;
  h ^= h >> 32;
  return h;
}

inline uint64_t hash_bytes(const char* p, size_t n) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xFF51AFD7ED558CCDull);
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = (h ^ w) * 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
  }
  uint64_t w = 0;
  std::memcpy(&w, p, n);
  return mix64((h ^ w) * 0x94D049BB133111EBull);
}

// Slots for n entries: a power of two, at most 3/8 full, so probe runs stay short.
inline size_t capacity_for(size_t n) {
  size_t c = 16;
  while (c * 3 < n * 4) c *= 2;
  return c * 2;
}

// uint64 -> V; the key ~0 is reserved (token ids never reach 2^32 - 1).
template <class V>
class PairMap {
 public:
  static constexpr uint64_t kEmpty = ~uint64_t{0};

  explicit PairMap(size_t expected = 16) { rehash(capacity_for(expected)); }

  V* find(uint64_t key) {
    for (size_t i = mix64(key) & mask_;; i = (i + 1) & mask_) {
      if (slots_[i].key == key) return &slots_[i].value;
      if (slots_[i].key == kEmpty) return nullptr;
    }
  }
  const V* find(uint64_t key) const { return const_cast<PairMap*>(this)->find(key); }

  // The value for `key`, inserted as V{} when absent.
  V& operator[](uint64_t key) {
    if ((size_ + 1) * 4 > slots_.size() * 3) rehash(slots_.size() * 2);
    size_t i = mix64(key) & mask_;
    for (; slots_[i].key != kEmpty; i = (i + 1) & mask_)
      if (slots_[i].key == key) return slots_[i].value;
    ++size_;
    slots_[i].key = key;
    slots_[i].value = V{};
    return slots_[i].value;
  }

  size_t size() const { return size_; }

  void clear() {
    for (auto& s : slots_) s.key = kEmpty;
    size_ = 0;
  }

  template <class F>
  void for_each(F&& f) const {
    for (const auto& s : slots_)
      if (s.key != kEmpty) f(s.key, s.value);
  }

 private:
  struct Slot {
    uint64_t key = kEmpty;
    V value{};
  };

  void rehash(size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    size_ = 0;
    for (auto& s : old)
      if (s.key != kEmpty) (*this)[s.key] = std::move(s.value);
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// Byte string -> V, the strings copied into one arena.
template <class V>
class StringMap {
 public:
  explicit StringMap(size_t expected = 16) { rehash(capacity_for(expected)); }

  V* find(std::string_view key) { return find(key, hash_bytes(key.data(), key.size())); }

  V* find(std::string_view key, uint64_t h) {
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.len == kEmptyLen) return nullptr;
      if (s.hash == h && key_of(s) == key) return &s.value;
    }
  }

  // The value for `key`, inserted as V{} when absent.
  V& operator[](std::string_view key) { return get(key, hash_bytes(key.data(), key.size())); }

  V& get(std::string_view key, uint64_t h) {
    if ((size_ + 1) * 4 > slots_.size() * 3) rehash(slots_.size() * 2);
    size_t i = h & mask_;
    for (; slots_[i].len != kEmptyLen; i = (i + 1) & mask_)
      if (slots_[i].hash == h && key_of(slots_[i]) == key) return slots_[i].value;
    ++size_;
    Slot& s = slots_[i];
    s.hash = h;
    s.offset = arena_.size();
    s.len = static_cast<uint32_t>(key.size());
    arena_.append(key.data(), key.size());
    s.value = V{};
    return s.value;
  }

  size_t size() const { return size_; }
  size_t arena_bytes() const { return arena_.size(); }

  template <class F>
  void for_each(F&& f) const {
    for (const auto& s : slots_)
      if (s.len != kEmptyLen) f(key_of(s), s.value);
  }

 private:
  static constexpr uint32_t kEmptyLen = ~uint32_t{0};

  struct Slot {
    uint64_t hash = 0;
    size_t offset = 0;
    uint32_t len = kEmptyLen;
    V value{};
  };

  std::string_view key_of(const Slot& s) const {
    return std::string_view(arena_.data() + s.offset, s.len);
  }

  void rehash(size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    for (auto& s : old) {
      if (s.len == kEmptyLen) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].len != kEmptyLen) i = (i + 1) & mask_;
      slots_[i] = std::move(s);
    }
  }

  std::vector<Slot> slots_;
  std::string arena_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

}  // namespace stoch::data
