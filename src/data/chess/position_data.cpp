#include "data/chess/position_data.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "core/cpus.h"
#include "core/disk_space.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/rng.h"
#include "core/strings.h"
#include "core/whole_file.h"
#include "data/chess/fen_tokens.h"

namespace fs = std::filesystem;

namespace stoch::chess {
namespace {

const char* kFormat = "stoch-chess-positions";
const char* kStart = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1";
enum : uint64_t { kGameStream = 1, kSplitStream = 2 };
constexpr int kGameRetries = 3;

nlohmann::json settings_json(const GenerateOptions& o) {
  return {{"depth", o.limit.depth},         {"nodes", o.limit.nodes}, {"seed", o.seed},
          {"random_plies", o.random_plies}, {"multipv", o.multipv},   {"max_plies", o.max_plies},
          {"val_fraction", o.val_fraction}};
}

bool in_val(const GenerateOptions& o, uint32_t game) {
  return static_cast<double>(mix_seed(o.seed, kSplitStream, game) >> 11) * 0x1.0p-53 <
         o.val_fraction;
}

// The FEN less its clocks: positions that differ only in move counters are one position.
std::string position_key(const std::string& fen) {
  const auto parts = split(fen, ' ');
  std::string key;
  for (size_t i = 0; i < std::min<size_t>(4, parts.size()); ++i) key += parts[i] + " ";
  return key;
}

void copy_field(char* dst, size_t size, const std::string& s, const std::string& what) {
  if (s.size() >= size) throw EngineError(str("engine: ", what, " too long: ", s));
  std::memset(dst, 0, size);
  std::memcpy(dst, s.data(), s.size());
}

PositionRecord make_record(const std::string& fen, const SearchResult& r, uint32_t game) {
  PositionRecord rec{};
  copy_field(rec.fen, sizeof rec.fen, fen, "FEN");
  copy_field(rec.best_move, sizeof rec.best_move, r.best_move, "move");
  const Score& s = r.lines[0].score;
  rec.mate = s.mate ? 1 : 0;
  rec.score = s.value;
  rec.win_prob = static_cast<float>(win_probability(s));
  rec.game = game;
  return rec;
}

// One game: a few uniformly random plies, then moves drawn from the engine's best lines; every
// position after the random opening that has a legal move is labelled.
std::vector<PositionRecord> play_game(UciEngine& e, const GenerateOptions& o, uint32_t game) {
  Rng rng(mix_seed(o.seed, kGameStream, game));
  e.new_game();
  const int random = static_cast<int>(rng.below(static_cast<uint64_t>(o.random_plies) + 1));
  std::vector<PositionRecord> out;
  std::string fen = kStart;
  for (int ply = 0; ply < o.max_plies; ++ply) {
    std::string move;
    if (ply < random) {
      const auto moves = e.legal_moves(fen);
      if (moves.empty()) break;
      move = moves[rng.below(moves.size())];
    } else {
      const SearchResult r = e.search(fen, {}, o.limit, 1, 60 * o.engine_timeout);
      if (r.best_move == "(none)" || r.lines[0].pv.empty()) break;  // mate or stalemate
      out.push_back(make_record(fen, r, game));
      move = r.best_move;
      if (o.multipv > 1) {
        // The next move from a shallow multi-PV search: several good moves, for varied games,
        // at a small fraction of the labelling search's cost.
        const SearchResult lines =
            e.search(fen, {}, SearchLimit{o.sample_depth, 0}, o.multipv, 60 * o.engine_timeout);
        move = lines.lines[rng.below(lines.lines.size())].pv.front();
      }
    }
    fen = e.fen_after(fen, {move});
  }
  return out;
}

std::unique_ptr<UciEngine> start_engine(const std::string& path, double timeout_s) {
  auto e = std::make_unique<UciEngine>(path, timeout_s);
  e->set_option("Threads", "1");  // one search thread: the same search every time
  return e;
}

void write_meta(const fs::path& dir, const GenerateOptions& o, const std::string& engine_name,
                int64_t games, int64_t train, int64_t val) {
  const nlohmann::json meta = {{"format", kFormat},
                               {"version", kDataVersion},
                               {"record_bytes", sizeof(PositionRecord)},
                               {"engine", engine_name},
                               {"settings", settings_json(o)},
                               {"games", games},
                               {"train", train},
                               {"val", val}};
  const std::string file = (dir / "meta.json").string();
  noting_free_space(file, [&] { replace_file_durably(file, meta.dump(2) + "\n"); });
}

nlohmann::json read_meta(const fs::path& dir) {
  const std::string file = (dir / "meta.json").string();
  const auto text = read_whole_file(file);
  if (!text) throw InputError(str(file, ": not found (not a stoch data chess folder)"));
  const auto meta = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (meta.is_discarded() || !meta.is_object()) throw InputError(str(file, ": not JSON"));
  auto get_int = [&](const char* key) {
    const auto it = meta.find(key);
    if (it == meta.end() || !it->is_number_integer() || it->get<int64_t>() < 0)
      throw InputError(str(file, ": ", key, ": expected an integer >= 0"));
    return it->get<int64_t>();
  };
  const auto format = meta.find("format");
  if (format == meta.end() || *format != kFormat)
    throw InputError(str(file, ": format: expected \"", kFormat, "\""));
  if (get_int("version") != kDataVersion)
    throw InputError(str(file, ": version ", get_int("version"), ": this stoch reads version ",
                         kDataVersion, "; regenerate the dataset"));
  if (get_int("record_bytes") != static_cast<int64_t>(sizeof(PositionRecord)))
    throw InputError(str(file, ": record_bytes: expected ", sizeof(PositionRecord)));
  for (const char* key : {"games", "train", "val"}) get_int(key);
  if (!meta.contains("settings") || !meta["settings"].is_object())
    throw InputError(str(file, ": settings: expected an object"));
  return meta;
}

// Appends records to a .bin file and makes them durable on sync().
class RecordFile {
 public:
  RecordFile(const fs::path& path, int64_t keep) : path_(path.string()) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw InputError(str(path_, ": cannot open for writing: ", std::strerror(errno)));
    // Records written after the last meta.json update belong to no finished game: drop them.
    const off_t bytes = static_cast<off_t>(keep) * static_cast<off_t>(sizeof(PositionRecord));
    if (::ftruncate(fd_, bytes) != 0 || ::lseek(fd_, bytes, SEEK_SET) != bytes)
      throw InputError(str(path_, ": cannot truncate: ", std::strerror(errno)));
  }
  ~RecordFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  void append(const PositionRecord& r) {
    const char* p = reinterpret_cast<const char*>(&r);
    size_t done = 0;
    while (done < sizeof r) {
      const ssize_t n = ::write(fd_, p + done, sizeof r - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail("write");
      done += static_cast<size_t>(n);
    }
  }
  void sync() {
    if (::fsync(fd_) != 0) fail("fsync");
  }

 private:
  [[noreturn]] void fail(const char* what) const {
    throw std::runtime_error(failed_write_message(path_, what, errno));
  }

  std::string path_;
  int fd_ = -1;
};

void check_options(const GenerateOptions& o) {
  if ((o.limit.depth > 0) == (o.limit.nodes > 0))
    throw InputError("--depth, --nodes: give exactly one");
  if (o.limit.depth < 0 || o.limit.depth > 40)
    throw InputError(str("--depth ", o.limit.depth, ": expected 1 to 40"));
  if (o.limit.nodes < 0 || o.limit.nodes > 1'000'000'000)
    throw InputError(str("--nodes ", o.limit.nodes, ": expected 1 to 1000000000"));
  if (o.positions < 1) throw InputError(str("--positions ", o.positions, ": expected >= 1"));
  if (o.multipv < 1 || o.multipv > 64)
    throw InputError(str("--multipv ", o.multipv, ": expected 1 to 64"));
  if (o.sample_depth < 1 || o.sample_depth > 40)
    throw InputError(str("--sample-depth ", o.sample_depth, ": expected 1 to 40"));
  if (o.random_plies < 0)
    throw InputError(str("--random-plies ", o.random_plies, ": expected >= 0"));
  // Nothing random is left: every game would be the first one again (the run went on for ever).
  if (o.random_plies == 0 && o.multipv == 1)
    throw InputError(
        "--random-plies 0 with --multipv 1: every game would be the same game; open with random "
        "plies or draw moves from more lines");
  // The records' FEN holds clocks up to 999, and a game's halfmove clock grows with its plies.
  if (o.max_plies < 1 || o.max_plies > 999)
    throw InputError(
        str("--max-plies ", o.max_plies, ": expected 1 to 999 (a record's clocks hold up to 999)"));
  if (!(o.engine_timeout > 0 && o.engine_timeout <= 3600))
    throw InputError(str("--engine-timeout ", o.engine_timeout, ": expected (0, 3600] seconds"));
  if (!(o.val_fraction >= 0 && o.val_fraction < 1))
    throw InputError(str("--val-fraction ", o.val_fraction, ": expected [0, 1)"));
}

}  // namespace

std::string record_fen(const PositionRecord& r) {
  return std::string(r.fen, strnlen(r.fen, sizeof r.fen));
}

std::string record_move(const PositionRecord& r) {
  return std::string(r.best_move, strnlen(r.best_move, sizeof r.best_move));
}

GenerateReport generate_positions(const GenerateOptions& o) {
  check_options(o);
  const std::string path = o.engine.empty() ? find_stockfish() : o.engine;
  const fs::path dir(o.out);
  GenerateReport report;
  int64_t games = 0;
  if (fs::exists(dir / "meta.json")) {
    const auto meta = read_meta(dir);
    if (meta["settings"] != settings_json(o))
      throw InputError(str((dir / "meta.json").string(), ": generated with settings ",
                           meta["settings"].dump(), "; these ask for ", settings_json(o).dump(),
                           " (use another --out)"));
    games = meta["games"].get<int64_t>();
    report.train = meta["train"].get<int64_t>();
    report.val = meta["val"].get<int64_t>();
    report.resumed = true;
  } else {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw InputError(str(o.out, ": cannot create: ", ec.message()));
    if (fs::exists(dir / "train.bin") || fs::exists(dir / "val.bin"))
      throw InputError(str(o.out, ": holds .bin files but no meta.json; use an empty folder"));
  }
  const int64_t before = report.train + report.val;
  // Positions already written, for deduplication.
  std::set<std::string> seen;
  if (report.resumed)
    for (const char* split : {"train", "val"})
      for (const auto& r : read_positions(o.out, split)) seen.insert(position_key(record_fen(r)));
  const int engines = o.engines > 0 ? o.engines : usable_cpus();
  std::string engine_name;
  {
    const auto probe = start_engine(path, o.engine_timeout);  // fails early, naming a bad path
    engine_name = probe->name();
  }
  // A new folder gets its meta.json (no games yet) before any record, so a call stopped at any
  // moment (killed, a full disk) leaves a folder that the same command continues.
  if (!report.resumed) write_meta(dir, o, engine_name, 0, 0, 0);
  RecordFile train(dir / "train.bin", report.train), val(dir / "val.bin", report.val);
  if (report.train + report.val >= o.positions) {
    report.games = games;
    return report;
  }

  // Workers play games in any order; the writer takes them in game order, so the files do not
  // depend on the number of engines or on timing. A game that fails for good fails the run
  // only when the writer needs it (workers run ahead of what the target needs).
  std::mutex mu;
  std::condition_variable cv;
  std::map<uint32_t, std::vector<PositionRecord>> done;
  std::map<uint32_t, std::exception_ptr> failed;
  uint32_t next_game = static_cast<uint32_t>(games);
  uint32_t written = static_cast<uint32_t>(games);
  bool stop = false;
  int active = engines;
  std::atomic<int64_t> restarts{0};
  const uint32_t window = static_cast<uint32_t>(4 * engines);

  auto worker = [&] {
    std::unique_ptr<UciEngine> engine;
    for (;;) {
      uint32_t game;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return stop || next_game < written + window; });
        if (stop) break;
        game = next_game++;
      }
      try {
        std::vector<PositionRecord> records;
        for (int attempt = 0;; ++attempt) {
          try {
            if (!engine) engine = start_engine(path, o.engine_timeout);
            records = play_game(*engine, o, game);
            break;
          } catch (const EngineError& e) {
            engine.reset();
            if (attempt >= kGameRetries) throw;
            ++restarts;
            log::warn(str("chess engine: ", e.what(), "; restarting it and replaying game ", game));
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        done.emplace(game, std::move(records));
        cv.notify_all();
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        failed.emplace(game, std::current_exception());
        cv.notify_all();
        break;  // this worker's engine keeps failing: leave the games to the others
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    --active;
    cv.notify_all();
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < engines; ++i) threads.emplace_back(worker);

  auto last_commit = std::chrono::steady_clock::now();
  auto commit = [&] {
    train.sync();
    val.sync();
    write_meta(dir, o, engine_name, written, report.train, report.val);
    last_commit = std::chrono::steady_clock::now();
  };
  std::exception_ptr failure;
  // Games in a row that added no new position: settings that reach fewer distinct positions
  // than asked for would otherwise play on for ever.
  constexpr int64_t kBarrenGames = 1000;
  int64_t barren = 0;
  try {
    while (report.train + report.val < o.positions) {
      std::vector<PositionRecord> records;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return done.count(written) || failed.count(written) || active == 0; });
        if (!done.count(written)) {
          const auto f = failed.find(written);
          if (f != failed.end()) std::rethrow_exception(f->second);
          if (!failed.empty()) std::rethrow_exception(failed.begin()->second);
          throw std::runtime_error("chess engines: every worker stopped");
        }
        records = std::move(done[written]);
        done.erase(written);
      }
      const bool is_val = in_val(o, written);
      const int64_t had = report.train + report.val;
      for (const auto& r : records) {
        if (report.train + report.val >= o.positions) break;
        if (!seen.insert(position_key(record_fen(r))).second) {
          ++report.duplicates;
          continue;
        }
        (is_val ? val : train).append(r);
        ++(is_val ? report.val : report.train);
      }
      {
        std::lock_guard<std::mutex> lock(mu);
        ++written;
        cv.notify_all();
      }
      barren = report.train + report.val > had ? 0 : barren + 1;
      if (barren >= kBarrenGames) {
        commit();
        throw InputError(str("--positions ", o.positions, ": the last ", kBarrenGames,
                             " games added no new position (", report.train + report.val,
                             " kept after ", written, " games; --max-plies ", o.max_plies,
                             ", --random-plies ", o.random_plies, ", --multipv ", o.multipv,
                             " reach too few); ask for fewer, or widen those"));
      }
      if (std::chrono::steady_clock::now() - last_commit > std::chrono::seconds(1)) commit();
    }
    commit();
  } catch (...) {
    failure = std::current_exception();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
    cv.notify_all();
  }
  for (auto& t : threads) t.join();
  report.restarts = restarts.load();
  report.games = written;
  report.added = report.train + report.val - before;
  if (failure) std::rethrow_exception(failure);
  return report;
}

std::vector<PositionRecord> read_positions(const std::string& dir, const std::string& split) {
  const auto meta = read_meta(dir);
  const int64_t count = meta[split].get<int64_t>();
  if (count == 0) return {};  // a call stopped before its first record may not have made the file
  const std::string file = (fs::path(dir) / (split + ".bin")).string();
  const auto bytes = read_whole_file(file);
  if (!bytes) throw InputError(str(file, ": cannot read"));
  if (static_cast<int64_t>(bytes->size()) < count * static_cast<int64_t>(sizeof(PositionRecord)))
    throw InputError(str(file, ": holds ", bytes->size() / sizeof(PositionRecord),
                         " records; meta.json says ", count));
  std::vector<PositionRecord> out(static_cast<size_t>(count));
  if (count > 0) std::memcpy(out.data(), bytes->data(), out.size() * sizeof(PositionRecord));
  for (size_t i = 0; i < out.size(); ++i) {
    const auto& r = out[i];
    const std::string where = str(file, ": record ", i);
    if (strnlen(r.fen, sizeof r.fen) == sizeof r.fen ||
        strnlen(r.best_move, sizeof r.best_move) == sizeof r.best_move)
      throw InputError(str(where, ": a field without its terminating NUL"));
    (void)encode_fen(record_fen(r), where);  // refuses a malformed FEN, naming the record
    if (!(r.win_prob >= 0 && r.win_prob <= 1) || (r.mate != 0 && r.mate != 1))
      throw InputError(str(where, ": win_prob outside [0, 1] or a bad mate flag"));
  }
  return out;
}

}  // namespace stoch::chess
