#include "data/chess/uci_engine.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <sstream>

#include "core/errors.h"
#include "core/log.h"
#include "core/strings.h"

namespace stoch::chess {
namespace {

using Clock = std::chrono::steady_clock;

bool executable(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

double seconds_left(Clock::time_point deadline) {
  return std::chrono::duration<double>(deadline - Clock::now()).count();
}

std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

int to_int(const std::string& s, const std::string& line) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (end == s.c_str() || *end != '\0' || errno != 0 || v < -(1L << 30) || v > (1L << 30))
    throw EngineError(str("engine: unreadable number \"", s, "\" in \"", line, "\""));
  return static_cast<int>(v);
}

// An "info" line with a score and a principal variation; false for any other info line and for
// bound scores (a fail-high or fail-low report, not the line's value).
bool parse_info(const std::string& line, SearchLine& out) {
  const auto w = words(line);
  bool scored = false;
  out = SearchLine{};
  for (size_t i = 1; i < w.size(); ++i) {
    if (w[i] == "string") return false;
    if (w[i] == "depth" && i + 1 < w.size()) {
      out.depth = to_int(w[++i], line);
    } else if (w[i] == "multipv" && i + 1 < w.size()) {
      out.multipv = to_int(w[++i], line);
    } else if (w[i] == "score" && i + 2 < w.size()) {
      out.score.mate = w[i + 1] == "mate";
      if (!out.score.mate && w[i + 1] != "cp")
        throw EngineError(str("engine: unknown score kind in \"", line, "\""));
      out.score.value = to_int(w[i + 2], line);
      i += 2;
      scored = true;
      if (i + 1 < w.size() && (w[i + 1] == "lowerbound" || w[i + 1] == "upperbound")) return false;
    } else if (w[i] == "pv") {
      out.pv.assign(w.begin() + static_cast<std::ptrdiff_t>(i) + 1, w.end());
      break;
    }
  }
  return scored;
}

void ignore_sigpipe() {
  // A write to an engine that died must fail with EPIPE, not kill the trainer.
  static std::once_flag once;
  std::call_once(once, [] { ::signal(SIGPIPE, SIG_IGN); });
}

}  // namespace

double win_probability(const Score& s) {
  if (s.mate) return s.value > 0 ? 1.0 : 0.0;
  return 1.0 / (1.0 + std::exp(-0.00368208 * static_cast<double>(s.value)));
}

std::string find_stockfish() {
  if (const char* env = std::getenv("STOCH_STOCKFISH"); env && *env) {
    if (!executable(env))
      throw InputError(str("STOCH_STOCKFISH=", env, ": not an executable file"));
    return env;
  }
  if (const char* path = std::getenv("PATH")) {
    for (const auto& dir : split(path, ':')) {
      const std::string candidate = (dir.empty() ? "." : dir) + "/stockfish";
      if (executable(candidate)) return candidate;
    }
  }
  if (executable("/usr/games/stockfish")) return "/usr/games/stockfish";
  throw InputError(
      "stockfish: not found (install Debian's stockfish package, which scripts/setup does, or "
      "set STOCH_STOCKFISH to an engine)");
}

UciEngine::UciEngine(const std::string& path, double timeout_s)
    : path_(path), timeout_s_(timeout_s) {
  ignore_sigpipe();
  if (!executable(path)) throw InputError(str(path, ": not an executable file (a UCI engine)"));
  int in[2], out[2], status[2];
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 ||
      ::pipe2(status, O_CLOEXEC) != 0)
    throw std::runtime_error(str("chess engine: pipe: ", std::strerror(errno)));
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error(str("chess engine: fork: ", std::strerror(errno)));
  if (pid_ == 0) {
    // The child: stdin and stdout are the pipes; stderr is discarded. An exec failure reports
    // its errno through `status`, which a successful exec closes.
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) ::dup2(devnull, 2);
    const char* argv[] = {path.c_str(), nullptr};
    ::execv(path.c_str(), const_cast<char* const*>(argv));
    const int err = errno;
    (void)!::write(status[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(status[1]);
  to_engine_ = in[1];
  from_engine_ = out[0];
  int err = 0;
  const ssize_t n = ::read(status[0], &err, sizeof err);
  ::close(status[0]);
  if (n == static_cast<ssize_t>(sizeof err)) {
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    throw InputError(str(path, ": cannot run: ", std::strerror(err)));
  }
  try {
    send("uci");
    std::vector<std::string> id;
    read_until("uciok", timeout_s_, &id);
    for (const auto& line : id)
      if (line.compare(0, 8, "id name ") == 0) name_ = line.substr(8);
    send("isready");
    read_until("readyok", timeout_s_);
  } catch (const EngineError& e) {
    throw InputError(str(path, ": not a UCI engine (", e.what(), ")"));
  }
}

UciEngine::~UciEngine() {
  if (pid_ > 0) {
    if (to_engine_ >= 0) (void)!::write(to_engine_, "quit\n", 5);
    // A polite quit, then SIGKILL for an engine that is stuck.
    for (int i = 0; i < 50; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      ::usleep(10000);
    }
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  if (to_engine_ >= 0) ::close(to_engine_);
  if (from_engine_ >= 0) ::close(from_engine_);
}

void UciEngine::send(const std::string& line) {
  const std::string text = line + "\n";
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(to_engine_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw EngineError(str(path_, ": the engine is gone (", std::strerror(errno), ")"));
    done += static_cast<size_t>(n);
  }
}

std::string UciEngine::read_until(const std::string& prefix, double timeout_s,
                                  std::vector<std::string>* seen) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(timeout_s));
  for (;;) {
    for (size_t nl; (nl = buffer_.find('\n')) != std::string::npos;) {
      std::string line = buffer_.substr(0, nl);
      buffer_.erase(0, nl + 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.compare(0, prefix.size(), prefix) == 0) return line;
      if (seen) seen->push_back(std::move(line));
    }
    const double left = seconds_left(deadline);
    if (left <= 0) throw EngineError(str(path_, ": no \"", prefix, "\" within ", timeout_s, " s"));
    pollfd p{from_engine_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::ceil(left * 1000)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;  // the deadline check above ends it
    char chunk[4096];
    const ssize_t n = ::read(from_engine_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw EngineError(str(path_, ": the engine exited before \"", prefix, "\""));
    buffer_.append(chunk, static_cast<size_t>(n));
    if (buffer_.size() > (1u << 24)) throw EngineError(str(path_, ": a line longer than 16 MiB"));
  }
}

void UciEngine::set_option(const std::string& name, const std::string& value) {
  send(str("setoption name ", name, " value ", value));
  send("isready");
  read_until("readyok", timeout_s_);
}

void UciEngine::new_game() {
  send("ucinewgame");
  send("isready");
  read_until("readyok", timeout_s_);
}

void UciEngine::position(const std::string& fen, const std::vector<std::string>& moves) {
  std::string cmd = "position fen " + fen;
  if (!moves.empty()) cmd += " moves " + join(moves, " ");
  send(cmd);
}

SearchResult UciEngine::search(const std::string& fen, const std::vector<std::string>& moves,
                               const SearchLimit& limit, int multipv, double timeout_s) {
  if ((limit.depth > 0) == (limit.nodes > 0))
    throw std::invalid_argument("UciEngine::search: give a depth or a node count");
  if (multipv != multipv_) {
    set_option("MultiPV", str(multipv));
    multipv_ = multipv;
  }
  position(fen, moves);
  // searchmoves last: the engine reads every word after it as a move.
  send((limit.depth > 0 ? str("go depth ", limit.depth) : str("go nodes ", limit.nodes)) +
       (limit.searchmoves.empty() ? "" : " searchmoves " + join(limit.searchmoves, " ")));
  std::vector<std::string> info;
  const std::string done = read_until("bestmove", timeout_s, &info);
  SearchResult r;
  const auto w = words(done);
  if (w.size() < 2) throw EngineError(str(path_, ": \"", done, "\": expected bestmove MOVE"));
  r.best_move = w[1];
  // Each rank's last scored report: the deepest completed one.
  for (const auto& line : info) {
    if (line.compare(0, 5, "info ") != 0) continue;
    SearchLine s;
    if (!parse_info(line, s) || s.multipv < 1 || s.multipv > multipv) continue;
    if (r.lines.size() < static_cast<size_t>(s.multipv)) r.lines.resize(s.multipv);
    if (s.depth >= r.lines[s.multipv - 1].depth) r.lines[s.multipv - 1] = s;
  }
  if (r.lines.empty())
    throw EngineError(str(path_, ": no scored info line before \"", done, "\" for ", fen,
                          moves.empty() ? "" : " moves " + join(moves, " "),
                          info.empty() ? std::string() : "; last: " + info.back()));
  return r;
}

std::vector<std::string> UciEngine::legal_moves(const std::string& fen) {
  position(fen, {});
  send("go perft 1");
  std::vector<std::string> lines;
  read_until("Nodes searched", timeout_s_, &lines);
  std::vector<std::string> moves;
  for (const auto& line : lines) {
    const auto colon = line.find(": ");
    if (colon == std::string::npos || colon < 4 || colon > 5) continue;
    moves.push_back(line.substr(0, colon));
  }
  return moves;
}

std::string UciEngine::fen_after(const std::string& fen, const std::vector<std::string>& moves) {
  position(fen, moves);
  send("d");
  std::vector<std::string> lines;
  read_until("Checkers:", timeout_s_, &lines);
  for (const auto& line : lines)
    if (line.compare(0, 5, "Fen: ") == 0) return line.substr(5);
  throw EngineError(str(path_, ": no \"Fen:\" line in the engine's board"));
}

RestartingEngine::RestartingEngine(std::string path, int retries, double timeout_s)
    : path_(std::move(path)), retries_(retries), timeout_s_(timeout_s) {
  engine_ = std::make_unique<UciEngine>(path_, timeout_s_);
  name_ = engine_->name();
}

void RestartingEngine::set_option(const std::string& name, const std::string& value) {
  options_.emplace_back(name, value);
  with_retries([&](UciEngine& e) { e.set_option(name, value); });
}

void RestartingEngine::new_game() {
  with_retries([](UciEngine& e) { e.new_game(); });
}

template <class F>
auto RestartingEngine::with_retries(F&& f) -> decltype(f(std::declval<UciEngine&>())) {
  for (int attempt = 0;; ++attempt) {
    try {
      if (!engine_) {
        engine_ = std::make_unique<UciEngine>(path_, timeout_s_);
        for (const auto& [name, value] : options_) engine_->set_option(name, value);
      }
      return f(*engine_);
    } catch (const EngineError& e) {
      engine_.reset();  // kills what is left of the process
      if (attempt >= retries_) throw;
      ++restarts_;
      log::warn(str("chess engine: ", e.what(), "; restarting it (restart ", restarts_, ")"));
    }
  }
}

SearchResult RestartingEngine::search(const std::string& fen, const std::vector<std::string>& moves,
                                      const SearchLimit& limit, int multipv, double timeout_s) {
  return with_retries(
      [&](UciEngine& e) { return e.search(fen, moves, limit, multipv, timeout_s); });
}

std::vector<std::string> RestartingEngine::legal_moves(const std::string& fen) {
  return with_retries([&](UciEngine& e) { return e.legal_moves(fen); });
}

std::string RestartingEngine::fen_after(const std::string& fen,
                                        const std::vector<std::string>& moves) {
  return with_retries([&](UciEngine& e) { return e.fen_after(fen, moves); });
}

}  // namespace stoch::chess
