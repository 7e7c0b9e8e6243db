// The chess task's prepared move positions, kept between runs (LibTorch-free, so it can be fuzzed).
// Preparing them takes tens of seconds of Stockfish searches whose answers depend only on the
// held-out file, the engine and the data.* keys that choose and search the positions, so after the
// first run of a sweep (or `stoch eval`) the others read them from the cache.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <cstdint>

namespace stoch::chess {

// One held-out position prepared for the move metrics.
struct PreparedPosition {
  std::vector<std::string> moves;     // legal moves
  std::vector<uint8_t> successors;    // [moves x kFenTokens] tokens of the position after each
  std::string reference;              // the best move of a reference_depth search
  std::vector<double> engine_scores;  // each move's score for the mover (mates as +-1e5 -+ n)
  int mate_in = 0;                    // 1 or 2: a puzzle whose only solution is `solution`
  bool scored = true;                 // counts in action accuracy and tau (not a puzzle only)
  std::string solution;
};
using PreparedPositions = std::vector<PreparedPosition>;

// What the prepared positions depend on, as one line: the held-out file's size and CRC-32C, the
// engine's name and `settings` (the keys that choose and search the positions).
std::string move_cache_key(const std::string& val_file, const std::string& engine_name,
                           const std::string& settings);

// The cache file for `key`: chess-moves/ under $STOCH_CACHE, else $XDG_CACHE_HOME/stoch, else
// $HOME/.cache/stoch; "" when none of them is set, or STOCH_CACHE is set but empty (no cache).
std::string move_cache_path(const std::string& key);

// The cache file's text for `positions` prepared under `key`.
std::string format_move_cache(const std::string& key, const PreparedPositions& positions);

// The positions in `text`, or nothing when it was written under another key (a CRC collision in
// the file name). Throws InputError naming `where` and the line when the text is damaged.
std::optional<PreparedPositions> parse_move_cache(const std::string& text, const std::string& key,
                                                  const std::string& where);

// The cache keeps at most this many files: each held-out file and setting adds one (a few MB),
// and a sweep over data folders would otherwise grow the folder without end.
constexpr size_t kMoveCacheFiles = 32;

// Marks `cache` as just used, then removes the least recently used files of its folder beyond
// `keep` (never `cache` itself). Failures are ignored: the cache only saves time.
void keep_recent_move_caches(const std::string& cache, size_t keep = kMoveCacheFiles);

}  // namespace stoch::chess
