#include "data/chess/mate_puzzle.h"

namespace stoch::chess {

std::optional<MatePuzzle> find_mate_puzzle(RestartingEngine& engine, const std::string& fen,
                                           const std::vector<std::string>& moves,
                                           const SearchResult& ranking) {
  if (ranking.lines.empty() || ranking.lines[0].pv.empty()) return std::nullopt;
  const Score& best = ranking.lines[0].score;
  if (!best.mate || (best.value != 1 && best.value != 2)) return std::nullopt;
  const auto mates_as_fast = [&](const Score& s) {
    return s.mate && s.value > 0 && s.value <= best.value;
  };
  if (ranking.lines.size() > 1 && mates_as_fast(ranking.lines[1].score)) return std::nullopt;
  const std::string& solution = ranking.lines[0].pv.front();
  // Each other move on its own: searched together, the engine's pruning let a second mate in 2
  // pass as a longer one even at depth 16.
  for (const auto& m : moves) {
    if (m == solution) continue;
    engine.new_game();
    const auto other = engine.search(fen, {}, SearchLimit{kMateCheckDepth, 0, {m}}, 1);
    if (mates_as_fast(other.lines[0].score)) return std::nullopt;
  }
  return MatePuzzle{best.value, solution};
}

}  // namespace stoch::chess
