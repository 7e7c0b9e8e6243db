// Mate puzzles among held-out positions: a mate in 1 or 2 that exactly one move achieves, so that
// a network's chosen move either solves it or does not.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "data/chess/uci_engine.h"

namespace stoch::chess {

// Depth of the searches that look for a second solution, one per other move (the multi-PV
// ranking search can score one as a longer mate, or in centipawns: Stockfish 15.1 at depth 6 did
// so in 11 positions found by exhaustive search; one move searched alone to depth 10 showed every
// second solution, in 0.1-1.5 s per position for all its moves).
constexpr int kMateCheckDepth = 10;

struct MatePuzzle {
  int mate_in = 0;       // 1 or 2
  std::string solution;  // the one move (UCI) that mates that fast
};

// The puzzle in `fen` given its multi-PV `ranking` search over every legal move (`moves`): none
// when the best line is no mate in 1 or 2, or when another move also mates that fast (in the
// ranking, or in a depth-kMateCheckDepth search of that move alone, from a cleared engine).
std::optional<MatePuzzle> find_mate_puzzle(RestartingEngine& engine, const std::string& fen,
                                           const std::vector<std::string>& moves,
                                           const SearchResult& ranking);

}  // namespace stoch::chess
