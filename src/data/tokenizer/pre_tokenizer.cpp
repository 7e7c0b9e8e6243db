#include "data/tokenizer/pre_tokenizer.h"

#include <array>
#include <cstdint>

#include "data/tokenizer/unicode_classes.h"

namespace stoch::data {
namespace {

using unicode::CharClass;

struct AsciiClasses {
  std::array<CharClass, 128> cls{};
  AsciiClasses() {
    for (uint32_t c = 0; c < 128; ++c) cls[c] = unicode::char_class(c);
  }
};

const AsciiClasses kAscii;

// One character at s[i]: its class and its length in bytes. A byte that does not start a
// valid, shortest-form UTF-8 sequence is a character of its own, of class Other.
inline CharClass next_char(const uint8_t* s, size_t i, size_t n, size_t& len) {
  const uint8_t b = s[i];
  if (b < 0x80) {
    len = 1;
    return kAscii.cls[b];
  }
  uint32_t cp;
  size_t need;
  if (b >= 0xC2 && b <= 0xDF) {
    cp = b & 0x1F;
    need = 1;
  } else if (b >= 0xE0 && b <= 0xEF) {
    cp = b & 0x0F;
    need = 2;
  } else if (b >= 0xF0 && b <= 0xF4) {
    cp = b & 0x07;
    need = 3;
  } else {
    len = 1;
    return CharClass::Other;
  }
  if (i + need >= n) {  // truncated at the end of the text
    len = 1;
    return CharClass::Other;
  }
  for (size_t k = 1; k <= need; ++k) {
    const uint8_t c = s[i + k];
    if ((c & 0xC0) != 0x80) {
      len = 1;
      return CharClass::Other;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  // Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not characters.
  if ((need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
      (need == 3 && (cp < 0x10000 || cp > 0x10FFFF))) {
    len = 1;
    return CharClass::Other;
  }
  len = need + 1;
  return unicode::char_class(cp);
}

// The contractions 's 't 're 've 'm 'll 'd at s[i] == '\'': their length, or 0.
inline size_t contraction_length(const uint8_t* s, size_t i, size_t n) {
  if (i + 1 >= n) return 0;
  const uint8_t c = s[i + 1];
  if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
  if (i + 2 >= n) return 0;
  const uint8_t d = s[i + 2];
  if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return 3;
  return 0;
}

}  // namespace

size_t pre_token_end(std::string_view text, size_t begin) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const size_t n = text.size();
  size_t i = begin, len;
  if (s[i] == '\'') {
    if (const size_t c = contraction_length(s, i, n)) return i + c;
  }
  CharClass cls = next_char(s, i, n, len);
  // ` ?X+`: a space joins the run of letters, numbers or others that follows it.
  if (s[i] == ' ' && i + 1 < n) {
    size_t next_len;
    const CharClass next = next_char(s, i + 1, n, next_len);
    if (next != CharClass::Space) {
      cls = next;
      i += 1;
      len = next_len;
    }
  }
  if (cls != CharClass::Space) {
    i += len;
    while (i < n && next_char(s, i, n, len) == cls) i += len;
    return i;
  }
  // A whitespace run: `\s+(?!\S)` leaves its last character to the piece that follows, unless
  // the run ends the text or is one character long (then `\s+` takes it whole).
  size_t last = i;
  i += len;
  while (i < n && next_char(s, i, n, len) == CharClass::Space) {
    last = i;
    i += len;
  }
  return i == n || last == begin ? i : last;
}

std::vector<std::string_view> pre_tokenize(std::string_view text) {
  std::vector<std::string_view> pieces;
  for (size_t i = 0; i < text.size();) {
    const size_t j = pre_token_end(text, i);
    pieces.push_back(text.substr(i, j - i));
    i = j;
  }
  return pieces;
}

}  // namespace stoch::data
