// A UCI chess engine (Stockfish) driven from C++ in a child process: the handshake, searches to
// a depth or a node count (with several principal variations), and, so that stoch needs no
// chess rules of its own, legal moves (`go perft 1`) and the position after moves (`d`).
// Plain C++ and POSIX; no LibTorch.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace stoch::chess {

// The engine crashed, stopped answering within the timeout, or said something unreadable.
class EngineError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A search score from the side to move's view: centipawns, or moves to mate (negative: the
// side to move is mated; 0: it is mated now).
struct Score {
  bool mate = false;
  int value = 0;
};

// The probability that the side to move wins, as Lichess maps centipawns to winning chances:
// 1 / (1 + exp(-0.00368208 cp)); a mate for the side to move is 1, against it 0.
double win_probability(const Score& s);

struct SearchLimit {
  int depth = 0;                         // search to this depth, or
  int64_t nodes = 0;                     // this many nodes (exactly one of the two is > 0)
  std::vector<std::string> searchmoves;  // root moves searched (UCI's searchmoves); empty: all
};

struct SearchLine {
  int multipv = 1;
  int depth = 0;
  Score score;
  std::vector<std::string> pv;  // UCI moves, the first being this line's move
};

struct SearchResult {
  std::vector<SearchLine> lines;  // by multipv rank: the last full-depth report of each
  std::string best_move;          // "(none)" when the side to move has no legal move
};

// The engine to use: $STOCH_STOCKFISH, else `stockfish` on PATH, else /usr/games/stockfish
// (Debian's package). Throws InputError naming the package when there is none.
std::string find_stockfish();

class UciEngine {
 public:
  // Starts `path` and completes the uci / isready handshake within `timeout_s`. Throws
  // InputError naming the path when it cannot be run or does not answer as a UCI engine.
  explicit UciEngine(const std::string& path, double timeout_s = 10);
  ~UciEngine();
  UciEngine(const UciEngine&) = delete;
  UciEngine& operator=(const UciEngine&) = delete;

  void set_option(const std::string& name, const std::string& value);
  // ucinewgame, then waits until the engine is ready: its hash and histories are cleared, so
  // that what follows does not depend on what it searched before.
  void new_game();
  // `fen` then `moves` (UCI notation); multipv principal variations. `timeout_s` bounds the
  // whole search. Throws EngineError on a crash, a timeout or a garbled answer.
  SearchResult search(const std::string& fen, const std::vector<std::string>& moves,
                      const SearchLimit& limit, int multipv = 1, double timeout_s = 60);
  // The legal moves of the position, in the engine's order.
  std::vector<std::string> legal_moves(const std::string& fen);
  // The FEN after `moves` from `fen`.
  std::string fen_after(const std::string& fen, const std::vector<std::string>& moves);

  pid_t pid() const { return pid_; }
  const std::string& path() const { return path_; }
  const std::string& name() const { return name_; }  // the engine's "id name"

 private:
  void send(const std::string& line);
  // Reads lines until one starts with `prefix` (returned); the others go to `seen`.
  std::string read_until(const std::string& prefix, double timeout_s,
                         std::vector<std::string>* seen = nullptr);
  void position(const std::string& fen, const std::vector<std::string>& moves);

  std::string path_;
  std::string name_;
  double timeout_s_;
  pid_t pid_ = -1;
  int to_engine_ = -1, from_engine_ = -1;
  std::string buffer_;  // bytes read past the last full line
  int multipv_ = 1;
};

// A UciEngine that survives its engine: a call that fails with EngineError kills the process,
// starts a fresh one (with the options set so far) and retries, up to `retries` times, then
// rethrows. Suited to callers that start each search from new_game(), as a fresh engine is in
// that state.
class RestartingEngine {
 public:
  RestartingEngine(std::string path, int retries = 3, double timeout_s = 10);

  void set_option(const std::string& name, const std::string& value);
  void new_game();
  const std::string& name() const { return name_; }

  SearchResult search(const std::string& fen, const std::vector<std::string>& moves,
                      const SearchLimit& limit, int multipv = 1, double timeout_s = 60);
  std::vector<std::string> legal_moves(const std::string& fen);
  std::string fen_after(const std::string& fen, const std::vector<std::string>& moves);

  int64_t restarts() const { return restarts_; }
  pid_t pid() const { return engine_ ? engine_->pid() : -1; }

 private:
  template <class F>
  auto with_retries(F&& f) -> decltype(f(std::declval<UciEngine&>()));

  std::string path_;
  int retries_;
  double timeout_s_;
  std::unique_ptr<UciEngine> engine_;
  std::vector<std::pair<std::string, std::string>> options_;  // set again after a restart
  std::string name_;
  int64_t restarts_ = 0;
};

}  // namespace stoch::chess
