// Byte-level writer and reader for the state that environments, vector envs and replay buffers
// save into checkpoints: plain values appended in order, read back in the same order.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "core/errors.h"

namespace stoch::rl {

class StateWriter {
 public:
  template <class T>
  StateWriter& put(const T& v) {
    static_assert(std::is_trivially_copyable<T>::value, "plain values only");
    return put_raw(&v, sizeof(T));
  }
  template <class T>
  StateWriter& put_vector(const std::vector<T>& v) {
    put<uint64_t>(v.size());
    for (const auto& x : v) put(x);
    return *this;
  }
  StateWriter& put_raw(const void* p, size_t bytes) {
    if (bytes == 0) return *this;  // p may be an empty vector's null data()
    bytes_.append(static_cast<const char*>(p), bytes);
    return *this;
  }
  std::string str() && { return std::move(bytes_); }
  const std::string& str() const& { return bytes_; }

 private:
  std::string bytes_;
};

// Throws InputError naming `what` (the state's owner) for truncated or overlong input.
class StateReader {
 public:
  explicit StateReader(const std::string& bytes, std::string what = "environment state")
      : bytes_(bytes), what_(std::move(what)) {}

  template <class T>
  T get() {
    static_assert(std::is_trivially_copyable<T>::value, "plain values only");
    T v;
    get_raw(&v, sizeof(T));
    return v;
  }
  template <class T>
  std::vector<T> get_vector() {
    const uint64_t n = get<uint64_t>();
    if (n > bytes_.size()) throw InputError(what_ + " has a bad length");
    std::vector<T> v(n);
    for (auto& x : v) x = get<T>();
    return v;
  }
  void get_raw(void* p, size_t bytes) {
    if (bytes > bytes_.size() - pos_) throw InputError(what_ + " is truncated");
    if (bytes == 0) return;  // p may be an empty vector's null data()
    std::memcpy(p, bytes_.data() + pos_, bytes);
    pos_ += bytes;
  }
  // Call after the last get(): leftover bytes mean the state belongs to something else.
  void expect_end() const {
    if (pos_ != bytes_.size()) throw InputError(what_ + " has trailing bytes");
  }

 private:
  const std::string& bytes_;
  std::string what_;
  size_t pos_ = 0;
};

}  // namespace stoch::rl
