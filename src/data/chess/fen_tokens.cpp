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

// The board as 64 characters from a8 to h1, '.' for an empty square.
using Board = std::string;

char at(const Board& b, int rank, int file) {  // rank 0 is the 8th
  return rank < 0 || rank > 7 || file < 0 || file > 7 ? '\0'
                                                      : b[static_cast<size_t>(rank * 8 + file)];
}

// Whether the side whose pieces are upper case (`white`) attacks the square.
bool attacked(const Board& b, int rank, int file, bool white) {
  const auto own = [&](char piece) { return white ? piece : static_cast<char>(piece - 'A' + 'a'); };
  // A white pawn attacks towards the 8th rank, from the rank below the square.
  const int pawn_rank = white ? rank + 1 : rank - 1;
  if (at(b, pawn_rank, file - 1) == own('P') || at(b, pawn_rank, file + 1) == own('P')) return true;
  for (const auto& [dr, df] :
       {std::pair{1, 2}, {2, 1}, {-1, 2}, {-2, 1}, {1, -2}, {2, -1}, {-1, -2}, {-2, -1}})
    if (at(b, rank + dr, file + df) == own('N')) return true;
  for (int dr = -1; dr <= 1; ++dr)
    for (int df = -1; df <= 1; ++df) {
      if (dr == 0 && df == 0) continue;
      if (at(b, rank + dr, file + df) == own('K')) return true;
      const char slider = dr != 0 && df != 0 ? own('B') : own('R');
      for (int r = rank + dr, f = file + df;; r += dr, f += df) {
        const char c = at(b, r, f);
        if (c == '\0') break;
        if (c == slider || c == own('Q')) return true;
        if (c != '.') break;
      }
    }
  return false;
}

// Why the position cannot arise in a game of chess, or "" when nothing static says so: the
// checks python-chess's Board.is_valid makes that need no move history. Such a position gave
// the engine nothing to search (no kings) or was scored as if it were real.
std::string illegal(const Board& b, bool white_to_move, const std::string& castling,
                    const std::string& ep) {
  int kings[2] = {0, 0};
  for (char c : b) kings[0] += c == 'K', kings[1] += c == 'k';
  if (kings[0] != 1 || kings[1] != 1) return "expected one king of each colour";
  for (int file = 0; file < 8; ++file)
    for (const char c : {at(b, 0, file), at(b, 7, file)})
      if (c == 'P' || c == 'p') return "a pawn on the first or last rank";
  const size_t king = b.find(white_to_move ? 'k' : 'K');
  if (attacked(b, static_cast<int>(king / 8), static_cast<int>(king % 8), white_to_move))
    return "the side not to move is in check";
  if (castling != "-") {
    // In KQkq's order, each at most once, with the king and that rook on their first squares.
    size_t next = 0;
    for (char c : castling) {
      const size_t where = std::string("KQkq").find(c, next);
      if (where == std::string::npos) return "castling rights out of KQkq's order or repeated";
      next = where + 1;
      const int rank = c == 'K' || c == 'Q' ? 7 : 0;
      const char k = c == 'K' || c == 'Q' ? 'K' : 'k', r = c == 'K' || c == 'Q' ? 'R' : 'r';
      if (at(b, rank, 4) != k || at(b, rank, c == 'K' || c == 'k' ? 7 : 0) != r)
        return str("castling right ", c, " without the king and rook on their first squares");
    }
  }
  if (ep != "-") {
    // Rank 6 with white to move, rank 3 with black: the square a pawn just passed over, empty,
    // with that pawn in front of it and the square it came from empty.
    if ((ep[1] == '6') != white_to_move)
      return str("en passant square ", ep, " on the wrong rank for the side to move");
    const int file = ep[0] - 'a', rank = '8' - ep[1];
    const int pawn_rank = white_to_move ? rank + 1 : rank - 1,
              from = white_to_move ? rank - 1 : rank + 1;
    if (at(b, rank, file) != '.' || at(b, from, file) != '.' ||
        at(b, pawn_rank, file) != (white_to_move ? 'p' : 'P'))
      return str("en passant square ", ep, " with no pawn that just passed it");
  }
  return "";
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
  Board board;
  const auto ranks = split(f[0], '/');
  if (ranks.size() != 8) throw bad("expected 8 ranks");
  for (const auto& rank : ranks) {
    size_t width = 0;
    for (char c : rank) {
      if (c >= '1' && c <= '8') {
        board.append(static_cast<size_t>(c - '0'), '.');
        width += static_cast<size_t>(c - '0');
      } else if (std::strchr("pnbrqkPNBRQK", c) && c) {
        board += c;
        ++width;
      } else {
        throw bad(str("'", c, "' is not a piece or an empty-square count"));
      }
    }
    if (width != 8) throw bad("a rank that is not 8 squares wide");
  }
  chars += board;
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
    // One spelling per position: "005" and "5" would be two token strings of one position.
    if (f[i].size() > 1 && f[i][0] == '0') throw bad("clocks must have no leading zero");
    chars += padded(f[i], 3, "a clock above 999");
  }
  if (f[5] == "0") throw bad("the fullmove number starts at 1");
  if (const std::string why = illegal(board, f[1] == "w", f[2], f[3]); !why.empty())
    throw InputError(str(where, ": illegal position \"", fen, "\": ", why));
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
