// Byte-level writer and reader for Env::save_state/load_state: plain values appended in order.
#pragma once

#include <cstring>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace stoch::rl {

class StateWriter {
 public:
  template <class T>
  StateWriter& put(const T& v) {
    static_assert(std::is_trivially_copyable<T>::value, "plain values only");
    bytes_.append(reinterpret_cast<const char*>(&v), sizeof(T));
    return *this;
  }
  template <class T>
  StateWriter& put_vector(const std::vector<T>& v) {
    put<uint64_t>(v.size());
    for (const auto& x : v) put(x);
    return *this;
  }
  std::string str() && { return std::move(bytes_); }
  const std::string& str() const& { return bytes_; }

 private:
  std::string bytes_;
};

class StateReader {
 public:
  explicit StateReader(const std::string& bytes) : bytes_(bytes) {}

  template <class T>
  T get() {
    static_assert(std::is_trivially_copyable<T>::value, "plain values only");
    if (pos_ + sizeof(T) > bytes_.size()) throw std::runtime_error("environment state is truncated");
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  template <class T>
  std::vector<T> get_vector() {
    const uint64_t n = get<uint64_t>();
    if (n > bytes_.size()) throw std::runtime_error("environment state has a bad length");
    std::vector<T> v(n);
    for (auto& x : v) x = get<T>();
    return v;
  }
  // Call after the last get(): leftover bytes mean the state belongs to another environment.
  void expect_end() const {
    if (pos_ != bytes_.size()) throw std::runtime_error("environment state has trailing bytes");
  }

 private:
  const std::string& bytes_;
  size_t pos_ = 0;
};

}  // namespace stoch::rl
