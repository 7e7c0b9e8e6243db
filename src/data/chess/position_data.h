// Chess positions labelled by a UCI engine (`stoch data chess`): generation, the on-disk format,
// and reading it back.
//
// A dataset folder holds train.bin and val.bin, arrays of fixed-size records (memory-mappable;
// numpy: dtype [('fen', 'S100'), ('best_move', 'S6'), ('mate', 'i1'), ('pad', 'V1'),
// ('win_prob', '<f4'), ('score', '<i4'), ('game', '<u4'), ('pad2', 'V8')]), and meta.json with
// the version, the settings and how far generation got. Games, not positions, are split into
// train and val, so that no game spans both.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/chess/uci_engine.h"

namespace stoch::chess {

constexpr int kDataVersion = 1;

#pragma pack(push, 1)
struct PositionRecord {
  char fen[100];      // NUL-padded FEN (side to move, clocks and all)
  char best_move[6];  // UCI notation, NUL-padded
  int8_t mate;        // 1 when `score` counts moves to mate
  uint8_t pad = 0;
  float win_prob;  // the side to move's win probability (win_probability of the score)
  int32_t score;   // centipawns or moves to mate, from the side to move's view
  uint32_t game;   // the generated game the position comes from
  uint8_t pad2[8] = {};
};
#pragma pack(pop)
static_assert(sizeof(PositionRecord) == 128, "records are 128 bytes");

struct GenerateOptions {
  std::string out;
  int64_t positions = 10000;  // labelled positions in train + val together
  SearchLimit limit{8, 0};    // the labelling search
  uint64_t seed = 0;
  int engines = 0;             // engine processes in parallel; 0: one per core
  int random_plies = 8;        // each game opens with up to this many uniformly random moves
  int multipv = 4;             // later moves are drawn from this many best lines of a search to
  int sample_depth = 2;        // this depth (the label's own search has one line)
  int max_plies = 200;         // a game stops after this many plies
  double val_fraction = 0.05;  // the share of games held out
  std::string engine;          // path; empty: find_stockfish()
  double engine_timeout = 10;  // seconds an engine may take to answer (a search: 60 x this)
};

struct GenerateReport {
  int64_t train = 0, val = 0;  // positions in the files
  int64_t games = 0;           // games generated in all (over every invocation)
  int64_t added = 0;           // positions written by this invocation
  int64_t duplicates = 0;      // positions dropped as already seen (this invocation)
  int64_t restarts = 0;        // engine restarts (this invocation)
  bool resumed = false;
};

// Generates, or continues, the dataset in `o.out`. Deterministic for given options whatever the
// number of engines and however often it is interrupted (each game starts on a cleared engine,
// and games are written in order). A folder from other settings, a bad folder, depth or node
// count, or a path that is not an engine: InputError naming it.
GenerateReport generate_positions(const GenerateOptions& o);

// The records of DIR's `split` ("train" or "val"). InputError naming the file when the folder
// is not a dataset of this version or a record is malformed.
std::vector<PositionRecord> read_positions(const std::string& dir, const std::string& split);

std::string record_fen(const PositionRecord& r);
std::string record_move(const PositionRecord& r);

}  // namespace stoch::chess
