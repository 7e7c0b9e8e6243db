#include "data/tokenizer/byte_level.h"

#include <algorithm>

namespace stoch::data {
namespace {

bool stands_for_itself(int b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

struct Tables {
  std::array<uint32_t, 256> codepoint{};
  std::array<std::string, 256> utf8;
  Tables() {
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      codepoint[b] = stands_for_itself(b) ? static_cast<uint32_t>(b) : next++;
      append_utf8(utf8[b], codepoint[b]);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

uint32_t byte_level_codepoint(uint8_t b) {
  return tables().codepoint[b];
}

int byte_of_codepoint(uint32_t cp) {
  if (cp < 256) return stands_for_itself(static_cast<int>(cp)) ? static_cast<int>(cp) : -1;
  if (cp >= 256 + 68) return -1;
  // The 68 remapped bytes, in byte order.
  uint32_t k = cp - 256;
  for (int b = 0; b < 256; ++b)
    if (!stands_for_itself(b) && k-- == 0) return b;
  return -1;
}

const std::string& byte_level_char(uint8_t b) {
  return tables().utf8[b];
}

std::string to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) out += tables().utf8[c];
  return out;
}

std::string from_byte_level(std::string_view token) {
  std::string out;
  const auto* s = reinterpret_cast<const unsigned char*>(token.data());
  const size_t n = token.size();
  size_t i = 0;
  while (i < n) {
    // Byte-level characters are at most two bytes long (U+0143 at the highest).
    if (s[i] < 0x80) {
      out += static_cast<char>(s[i]);
      ++i;
      continue;
    }
    if ((s[i] & 0xE0) == 0xC0 && i + 1 < n && (s[i + 1] & 0xC0) == 0x80) {
      const uint32_t cp = ((s[i] & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
      const int b = byte_of_codepoint(cp);
      if (b >= 0) {
        out += static_cast<char>(b);
        i += 2;
        continue;
      }
    }
    out += static_cast<char>(s[i]);  // not byte-level: copied as it is
    ++i;
  }
  return out;
}

std::array<uint8_t, 256> bytes_in_codepoint_order() {
  std::array<uint8_t, 256> order;
  for (int b = 0; b < 256; ++b) order[b] = static_cast<uint8_t>(b);
  std::sort(order.begin(), order.end(),
            [](uint8_t x, uint8_t y) { return byte_level_codepoint(x) < byte_level_codepoint(y); });
  return order;
}

}  // namespace stoch::data
