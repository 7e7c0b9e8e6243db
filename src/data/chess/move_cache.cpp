#include "data/chess/move_cache.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <utility>
#include <vector>

#include "core/crc32c.h"
#include "core/errors.h"
#include "core/strings.h"
#include "data/chess/fen_tokens.h"

namespace stoch::chess {
namespace {

constexpr const char* kMagic = "stoch-chess-move-cache 1";
// Bounds a damaged count cannot get past: no chess position has more legal moves than this.
constexpr size_t kMaxMoves = 256;

std::string hex8(uint32_t v) {
  char b[9];
  std::snprintf(b, sizeof b, "%08x", v);
  return b;
}

// Reads the cache line by line, each split at single spaces, and names the line in errors.
class Lines {
 public:
  Lines(const std::string& text, std::string where) : in_(text), where_(std::move(where)) {}

  // The next line's words; its first must be `tag` and it must have `words` words after it
  // (any number when words < 0).
  std::vector<std::string> next(const std::string& tag, long words = -1) {
    std::string line;
    ++number_;
    if (!std::getline(in_, line)) fail(str("expected \"", tag, " ...\", found the end"));
    auto w = split(line, ' ');
    if (w.empty() || w[0] != tag) fail(str("expected \"", tag, " ...\""));
    w.erase(w.begin());
    if (words >= 0 && static_cast<long>(w.size()) != words)
      fail(str("expected ", words, " values after \"", tag, "\", found ", w.size()));
    return w;
  }
  std::string rest_of(const std::string& tag) {
    std::string line;
    ++number_;
    if (!std::getline(in_, line) || line.rfind(tag + " ", 0) != 0)
      fail(str("expected \"", tag, " ...\""));
    return line.substr(tag.size() + 1);
  }
  void expect_end() {
    ++number_;
    in_.peek();
    if (!in_.eof()) fail("expected the end of the file after \"end\"");
  }
  [[noreturn]] void fail(const std::string& why) const {
    throw InputError(str(where_, ": line ", number_, ": ", why));
  }
  int64_t integer(const std::string& s, int64_t lo, int64_t hi) const {
    char* end = nullptr;
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (s.empty() || *end != '\0' || v < lo || v > hi)
      fail(str("expected an integer in [", lo, ", ", hi, "], got \"", s, "\""));
    return v;
  }
  double number(const std::string& s) const {
    char* end = nullptr;
    const double v = std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0' || !std::isfinite(v))
      fail(str("expected a finite number, got \"", s, "\""));
    return v;
  }

 private:
  std::istringstream in_;
  std::string where_;
  int64_t number_ = 0;
};

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

std::string move_cache_key(const std::string& val_file, const std::string& engine_name,
                           const std::string& settings) {
  return str("held-out file ", std::filesystem::file_size(val_file), " bytes crc32c ",
             hex8(crc32c_file(val_file)), "; engine ", engine_name, "; ", settings);
}

std::string move_cache_path(const std::string& key) {
  std::string root;
  if (const char* c = std::getenv("STOCH_CACHE")) {
    root = c;  // set but empty: no cache
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) {
    root = str(x, "/stoch");
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    root = str(h, "/.cache/stoch");
  }
  if (root.empty()) return "";
  return str(root, "/chess-moves/", hex8(crc32c(key.data(), key.size())), ".txt");
}

void keep_recent_move_caches(const std::string& cache, size_t keep) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::last_write_time(cache, fs::file_time_type::clock::now(), ec);
  std::vector<std::pair<fs::file_time_type, fs::path>> files;
  for (const auto& e : fs::directory_iterator(fs::path(cache).parent_path(), ec)) {
    const auto& p = e.path();
    if (p.extension() != ".txt" || fs::equivalent(p, cache, ec)) continue;
    const auto t = fs::last_write_time(p, ec);
    if (!ec) files.emplace_back(t, p);
  }
  if (files.size() + 1 <= keep) return;
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t i = keep > 0 ? keep - 1 : 0; i < files.size(); ++i) fs::remove(files[i].second, ec);
}

std::string format_move_cache(const std::string& key, const PreparedPositions& positions) {
  std::ostringstream os;
  os << kMagic << "\nkey " << key << "\npositions " << positions.size() << "\n";
  char number[32];
  for (const auto& p : positions) {
    os << "position " << p.scored << " " << p.mate_in << " "
       << (p.solution.empty() ? "-" : p.solution) << " "
       << (p.reference.empty() ? "-" : p.reference) << " " << p.moves.size() << "\nmoves";
    for (const auto& m : p.moves) os << " " << m;
    os << "\nscores";
    for (double s : p.engine_scores) {
      std::snprintf(number, sizeof number, "%.17g", s);
      os << " " << number;
    }
    os << "\ntokens";
    for (size_t i = 0; i < p.successors.size(); ++i) {
      if (i % kFenTokens == 0) os << " ";
      std::snprintf(number, sizeof number, "%02x", p.successors[i]);
      os << number;
    }
    os << "\n";
  }
  os << "end\n";
  return os.str();
}

std::optional<PreparedPositions> parse_move_cache(const std::string& text, const std::string& key,
                                                  const std::string& where) {
  Lines in(text, where);
  if (in.rest_of("stoch-chess-move-cache") != "1")
    in.fail(str("expected \"", kMagic, "\" (another version of stoch wrote it)"));
  if (in.rest_of("key") != key) return std::nullopt;
  const int64_t n = in.integer(in.next("positions", 1)[0], 0, 1 << 20);
  const int vocab = fen_vocab_size();
  PreparedPositions out;
  for (int64_t i = 0; i < n; ++i) {
    PreparedPosition p;
    const auto head = in.next("position", 5);
    p.scored = in.integer(head[0], 0, 1) == 1;
    p.mate_in = static_cast<int>(in.integer(head[1], 0, 2));
    p.solution = head[2] == "-" ? "" : head[2];
    p.reference = head[3] == "-" ? "" : head[3];
    const auto k = static_cast<long>(in.integer(head[4], 2, kMaxMoves));
    if ((p.mate_in > 0) == p.solution.empty())
      in.fail("a mate puzzle needs a solution, and only a puzzle has one");
    if (p.scored == p.reference.empty())
      in.fail("a scored position needs a reference move, and only a scored one has one");
    p.moves = in.next("moves", k);
    for (const auto& s : in.next("scores", k)) p.engine_scores.push_back(in.number(s));
    const auto rows = in.next("tokens", k);
    p.successors.resize(static_cast<size_t>(k) * kFenTokens);
    for (long m = 0; m < k; ++m) {
      const std::string& row = rows[m];
      if (p.moves[m].empty()) in.fail("an empty move");
      if (row.size() != 2 * kFenTokens)
        in.fail(
            str("expected ", kFenTokens, " tokens as hex pairs, got ", row.size(), " characters"));
      for (int j = 0; j < kFenTokens; ++j) {
        const int hi = hex_digit(row[2 * j]), lo = hex_digit(row[2 * j + 1]);
        if (hi < 0 || lo < 0 || hi * 16 + lo >= vocab)
          in.fail(str("token ", j, " of move ", m + 1, " is not a token id in hex"));
        p.successors[m * kFenTokens + j] = static_cast<uint8_t>(hi * 16 + lo);
      }
    }
    out.push_back(std::move(p));
  }
  in.next("end", 0);
  in.expect_end();
  return out;
}

}  // namespace stoch::chess
