// Chess datasets (`stoch data chess` folders: meta.json and 128-byte position records, read by
// --show and the chess_value task) and the FEN encoding the task applies to every record.
// Parts: meta.json, train.bin, a FEN, a move cache file (whose reading must survive a rewrite).
#include <algorithm>
#include <cstdlib>

#include "core/errors.h"
#include "data/chess/fen_tokens.h"
#include "data/chess/move_cache.h"
#include "data/chess/position_data.h"
#include "fuzz_target.h"

namespace stoch::fuzz {

void fuzz_one(const std::string& input) {
  const auto parts = split_parts(input, 4);
  const std::string dir = scratch_dir();
  write_file(dir + "/meta.json", parts[0]);
  write_file(dir + "/train.bin", parts[1]);
  write_file(dir + "/val.bin", "");
  try {
    for (const auto& r : chess::read_positions(dir, "train"))
      (void)chess::encode_fen(chess::record_fen(r), "record");  // what the task does next
  } catch (const InputError&) {
  }
  (void)chess::encode_fen(parts[2], "fen");
  try {
    const auto cached = chess::parse_move_cache(parts[3], "k", "cache");
    // What was read is written back the same way and reads back the same.
    if (cached) {
      const std::string text = chess::format_move_cache("k", *cached);
      if (chess::format_move_cache("k", *chess::parse_move_cache(text, "k", "again")) != text)
        std::abort();
    }
  } catch (const InputError&) {
  }
}

std::vector<std::string> fuzz_seeds() {
  chess::PositionRecord r{};
  const std::string fen = "rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq e3 0 1";
  std::copy(fen.begin(), fen.end(), r.fen);
  std::copy_n("e7e5", 4, r.best_move);
  r.win_prob = 0.5f;
  r.score = 12;
  const std::string record(reinterpret_cast<const char*>(&r), sizeof r);
  const std::string meta =
      "{\"format\": \"stoch-chess-positions\", \"version\": 1, \"record_bytes\": 128, "
      "\"engine\": \"Stockfish 15.1\", \"settings\": {\"depth\": 8}, \"games\": 1, \"train\": 2, "
      "\"val\": 0}\n";
  chess::PreparedPosition p;
  p.moves = {"e7e5", "d7d5"};
  p.engine_scores = {12, -30.5};
  p.reference = "e7e5";
  p.mate_in = 1;
  p.solution = "d7d5";
  for (const auto& m : p.moves) {
    const auto t = chess::encode_fen(fen, m);
    p.successors.insert(p.successors.end(), t.begin(), t.end());
  }
  const std::string cache = chess::format_move_cache("k", {p, p});
  return {join_parts({meta, record + record, fen, cache}),
          join_parts({meta, record, "8/8/8/4k3/8/8/8/4K3 w - - 99 123", cache})};
}

}  // namespace stoch::fuzz
