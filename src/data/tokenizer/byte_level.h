// GPT-2's byte-level alphabet: every byte is shown as one printable Unicode character, so that
// tokens are valid UTF-8 strings in vocab.json and merges.txt (bytes 0x21-0x7E, 0xA1-0xAC and
// 0xAE-0xFF stand for themselves, the other 68 bytes for U+0100 onwards, in byte order).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace stoch::data {

// The code point that stands for byte `b`.
uint32_t byte_level_codepoint(uint8_t b);

// The byte a code point stands for, or -1 when it is not in the alphabet.
int byte_of_codepoint(uint32_t cp);

// The UTF-8 text of the character that stands for byte `b`.
const std::string& byte_level_char(uint8_t b);

// Bytes to their byte-level string ("hi there" -> "hiĠthere").
std::string to_byte_level(std::string_view bytes);

// A token's bytes: each byte-level character becomes its byte; any other character (a special
// token's text) stays as it is.
std::string from_byte_level(std::string_view token);

// The 256 bytes ordered by the code points that stand for them: the order in which a BPE
// trainer numbers its initial alphabet.
std::array<uint8_t, 256> bytes_in_codepoint_order();

// Appends the UTF-8 encoding of `cp`.
void append_utf8(std::string& out, uint32_t cp);

}  // namespace stoch::data
