#include "data/chess/fen_tokens.h"

#include <cstring>

#include "core/errors.h"
#include "core/strings.h"

namespace stoch::chess {
namespace {

constexpr char kVocab[] = "0123456789abcdefghpnrqkwPNBRQK.-";
constexpr int kVocabSize = sizeof kVocab - 1;
static_assert(kVocabSize == 32, "32 characters");

uint8_t token(char c) {
  const char* p = c ? std::strchr(kVocab, c) : nullptr;
  return p ? static_cast<uint8_t>(p - kVocab) : 255;
}

}  // namespace

int fen_vocab_size() {
  return kVocabSize;
}

FenTokens encode_fen(const std::string& fen, const std::string& where) {
  auto bad = [&](const std::string& why) {
    return InputError(str(where, ": malformed FEN \"", fen, "\": ", why));
  };
  const auto f = split(fen, ' ');
  if (f.size() != 6) throw bad("expected 6 space-separated fields");
  std::string chars;
  if (f[1] != "w" && f[1] != "b") throw bad("side to move must be w or b");
  chars += f[1];
  const auto ranks = split(f[0], '/');
  if (ranks.size() != 8) throw bad("expected 8 ranks");
  for (const auto& rank : ranks) {
    size_t width = 0;
    for (char c : rank) {
      if (c >= '1' && c <= '8') {
        chars.append(static_cast<size_t>(c - '0'), '.');
        width += static_cast<size_t>(c - '0');
      } else if (std::strchr("pnbrqkPNBRQK", c) && c) {
        chars += c;
        ++width;
      } else {
        throw bad(str("'", c, "' is not a piece or an empty-square count"));
      }
    }
    if (width != 8) throw bad("a rank that is not 8 squares wide");
  }
  auto padded = [&](const std::string& s, size_t n, const char* what) {
    if (s.empty() || s.size() > n) throw bad(str(what, " \"", s, "\""));
    return s + std::string(n - s.size(), '.');
  };
  if (f[2] != "-" && f[2].find_first_not_of("KQkq") != std::string::npos)
    throw bad("castling rights must be - or letters of KQkq");
  chars += padded(f[2], 4, "castling rights");
  if (f[3] != "-" &&
      !(f[3].size() == 2 && f[3][0] >= 'a' && f[3][0] <= 'h' && (f[3][1] == '3' || f[3][1] == '6')))
    throw bad("en passant square must be - or a square on rank 3 or 6");
  chars += padded(f[3], 2, "en passant square");
  for (size_t i : {size_t{4}, size_t{5}}) {
    if (f[i].empty() || f[i].find_first_not_of("0123456789") != std::string::npos)
      throw bad("clocks must be non-negative integers");
    chars += padded(f[i], 3, "a clock above 999");
  }
  FenTokens out{};
  for (int i = 0; i < kFenTokens; ++i) {
    const uint8_t t = token(chars[static_cast<size_t>(i)]);
    if (t == 255) throw bad(str("character '", chars[static_cast<size_t>(i)], "'"));
    out[static_cast<size_t>(i)] = t;
  }
  return out;
}

std::string fen_token_chars(const FenTokens& tokens) {
  std::string out;
  for (uint8_t t : tokens) out += t < kVocabSize ? kVocab[t] : '?';
  return out;
}

}  // namespace stoch::chess
