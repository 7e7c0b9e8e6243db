// A FEN as a fixed-length token sequence, after the encoding of Ruoss et al. (2024,
// "Grandmaster-level chess without search"), but keeping FEN's '-' (their 31 characters have
// none, padding with '.' alone): 77 characters, each one token:
//   side to move (1), the 64 squares from a8 to h1 with '.' for an empty one (64), castling
//   rights padded with '.' to 4, the en passant square padded to 2, the halfmove clock and the
//   fullmove number each padded to 3.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace stoch::chess {

constexpr int kFenTokens = 77;
using FenTokens = std::array<uint8_t, kFenTokens>;

// The vocabulary: digits, files a-h, piece letters, 'w', '.' and '-'.
int fen_vocab_size();

// Throws InputError "WHERE: malformed FEN ..." naming what is wrong (fields, ranks, a character,
// a clock above 999).
FenTokens encode_fen(const std::string& fen, const std::string& where);

// The 77 characters the tokens stand for (for tests and inspection).
std::string fen_token_chars(const FenTokens& tokens);

}  // namespace stoch::chess
