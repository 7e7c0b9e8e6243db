// String helpers that need neither fmt nor LibTorch (the facade keeps fmt versions apart).
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace stoch {

// Concatenates anything streamable: str("step ", 3, ": ", 0.5).
template <class... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

std::vector<std::string> split(const std::string& s, char sep);

// Streams the items with `sep` between them: join({20, 30}, ", ") is "20, 30".
template <class T>
std::string join(const std::vector<T>& items, const std::string& sep) {
  std::ostringstream os;
  for (size_t i = 0; i < items.size(); ++i) os << (i ? sep : "") << items[i];
  return os.str();
}

// The offset of the first byte that does not begin a valid, shortest-form UTF-8 character (no
// surrogates, nothing past U+10FFFF), or std::string::npos when all of `s` is valid.
size_t first_invalid_utf8(const std::string& s);

// Levenshtein distance, for "did you mean" hints.
size_t edit_distance(const std::string& a, const std::string& b);

// The candidate closest to `word`, or "" when none is plausibly a misspelling of it.
std::string nearest(const std::string& word, const std::vector<std::string>& candidates);

// Fixed-point or scientific, whichever reads better, with `digits` significant digits.
std::string format_number(double v, int digits = 4);

// `s` in ASCII lower case.
std::string lowercase(std::string s);

// "1 thread", "2 threads": `n` and the noun, with an s unless n is 1.
std::string counted(int64_t n, const std::string& noun);

// "1h02m", "3m05s", "12s".
std::string format_duration(double seconds);

}  // namespace stoch
