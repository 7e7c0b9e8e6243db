// The chess task's move cache: what it writes reads back exactly, a file written under another
// key is not used, damage is reported with its line, and the cache folder follows the
// environment (STOCH_CACHE, XDG_CACHE_HOME, HOME).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <optional>
#include <set>

#include "core/errors.h"
#include "data/chess/fen_tokens.h"
#include "data/chess/move_cache.h"
#include "test_util.h"

namespace stoch {
namespace {

using chess::PreparedPosition;

PreparedPosition position(const std::vector<std::string>& moves, int mate_in, bool scored) {
  const std::string fen = "rnbqkbnr/pppppppp/8/8/4P3/8/PPPP1PPP/RNBQKBNR b KQkq e3 0 1";
  PreparedPosition p;
  p.moves = moves;
  for (size_t m = 0; m < moves.size(); ++m) {
    p.engine_scores.push_back(m == 0 ? 1e5 - 1 : -0.1 * static_cast<double>(m) / 3);
    const auto t = chess::encode_fen(fen, "test");
    p.successors.insert(p.successors.end(), t.begin(), t.end());
    p.successors[m * chess::kFenTokens + m] = static_cast<uint8_t>(m);  // rows differ
  }
  p.scored = scored;
  if (scored) p.reference = moves.back();
  p.mate_in = mate_in;
  if (mate_in > 0) p.solution = moves.front();
  return p;
}

void expect_same(const chess::PreparedPositions& a, const chess::PreparedPositions& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].moves, b[i].moves);
    EXPECT_EQ(a[i].engine_scores, b[i].engine_scores);  // bit for bit
    EXPECT_EQ(a[i].successors, b[i].successors);
    EXPECT_EQ(a[i].reference, b[i].reference);
    EXPECT_EQ(a[i].mate_in, b[i].mate_in);
    EXPECT_EQ(a[i].scored, b[i].scored);
    EXPECT_EQ(a[i].solution, b[i].solution);
  }
}

const chess::PreparedPositions kPositions = {position({"e7e5", "d7d5", "g8f6"}, 0, true),
                                             position({"a7a6", "h7h5"}, 2, false),
                                             position({"e7e5", "e7e6"}, 1, true)};

TEST(ChessMoveCache, WhatIsWrittenReadsBackExactly) {
  const std::string text = chess::format_move_cache("some key; depth 3", kPositions);
  const auto back = chess::parse_move_cache(text, "some key; depth 3", "c.txt");
  ASSERT_TRUE(back);
  expect_same(kPositions, *back);
  EXPECT_TRUE(chess::parse_move_cache(chess::format_move_cache("k", {}), "k", "c.txt")->empty());
}

TEST(ChessMoveCache, AnotherKeyIsNotUsed) {
  const std::string text = chess::format_move_cache("depth 3", kPositions);
  EXPECT_FALSE(chess::parse_move_cache(text, "depth 4", "c.txt"));
}

std::string damage_message(const std::string& text) {
  try {
    chess::parse_move_cache(text, "k", "c.txt");
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

TEST(ChessMoveCache, DamageNamesTheFileAndLine) {
  const std::string good = chess::format_move_cache("k", kPositions);
  // Cut after the first position (its four lines follow the three header lines).
  size_t cut = 0;
  for (int line = 0; line < 7; ++line) cut = good.find('\n', cut) + 1;
  EXPECT_EQ(damage_message(good.substr(0, cut)),
            "c.txt: line 8: expected \"position ...\", found the end");
  std::string bad_token = good;
  bad_token[good.find("tokens ") + 7] = 'z';
  EXPECT_EQ(damage_message(bad_token), "c.txt: line 7: token 0 of move 1 is not a token id in hex");
  std::string bad_score = good;
  bad_score.replace(good.find("scores ") + 7, 1, "x");
  EXPECT_NE(damage_message(bad_score).find("c.txt: line 6: expected a finite number"),
            std::string::npos);
  EXPECT_EQ(damage_message("stoch-chess-move-cache 2\n"),
            "c.txt: line 1: expected \"stoch-chess-move-cache 1\" (another version of stoch "
            "wrote it)");
  EXPECT_EQ(damage_message(good + "more\n"),
            "c.txt: line 17: expected the end of the file after \"end\"");
  std::string no_solution = good;
  const size_t puzzle = good.find("position 0 2 a7a6 - 2\n");
  ASSERT_NE(puzzle, std::string::npos) << good;
  no_solution.replace(puzzle + 13, 4, "-");  // the puzzle's solution
  EXPECT_EQ(damage_message(no_solution),
            "c.txt: line 8: a mate puzzle needs a solution, and only a puzzle has one");
}

// Sets an environment variable for one scope (unset when `value` is nothing).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value->c_str(), 1);
    else
      ::unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(ChessMoveCache, TheFolderFollowsTheEnvironment) {
  ScopedEnv home("HOME", "/h"), xdg("XDG_CACHE_HOME", std::nullopt),
      cache("STOCH_CACHE", std::nullopt);
  const std::string path = chess::move_cache_path("k");
  EXPECT_EQ(path.rfind("/h/.cache/stoch/chess-moves/", 0), 0u) << path;
  EXPECT_EQ(path.size(), std::string("/h/.cache/stoch/chess-moves/").size() + 8 + 4) << path;
  EXPECT_NE(chess::move_cache_path("k2"), path);
  {
    ScopedEnv x("XDG_CACHE_HOME", "/x");
    EXPECT_EQ(chess::move_cache_path("k").rfind("/x/stoch/chess-moves/", 0), 0u);
    ScopedEnv s("STOCH_CACHE", "/s");
    EXPECT_EQ(chess::move_cache_path("k").rfind("/s/chess-moves/", 0), 0u);
    ScopedEnv off("STOCH_CACHE", "");
    EXPECT_EQ(chess::move_cache_path("k"), "");
  }
  ScopedEnv nohome("HOME", std::nullopt);
  EXPECT_EQ(chess::move_cache_path("k"), "");
}

TEST(ChessMoveCache, TheKeyFollowsTheHeldOutFile) {
  const std::string dir = test::temp_dir("move-cache");
  test::write_text(dir + "/val.bin", std::string(128, 'a'));
  const std::string a = chess::move_cache_key(dir + "/val.bin", "Stockfish 15.1", "depth 3");
  EXPECT_EQ(a, chess::move_cache_key(dir + "/val.bin", "Stockfish 15.1", "depth 3"));
  EXPECT_NE(a, chess::move_cache_key(dir + "/val.bin", "Stockfish 16", "depth 3"));
  EXPECT_NE(a, chess::move_cache_key(dir + "/val.bin", "Stockfish 15.1", "depth 4"));
  test::write_text(dir + "/val.bin", std::string(127, 'a') + "b");
  EXPECT_NE(a, chess::move_cache_key(dir + "/val.bin", "Stockfish 15.1", "depth 3"));
}

// The folder keeps the most recently used files: one read now counts as recent, however old.
TEST(ChessMoveCache, OnlyTheMostRecentlyUsedFilesAreKept) {
  namespace fs = std::filesystem;
  const std::string dir = test::temp_dir("move_cache_lru");
  const auto now = fs::file_time_type::clock::now();
  for (int i = 0; i < 10; ++i) {
    const std::string f = dir + "/" + std::to_string(i) + ".txt";
    test::write_text(f, "x");
    fs::last_write_time(f, now - std::chrono::hours(10 - i));  // 0.txt the oldest
  }
  test::write_text(dir + "/other.bin", "not a cache file");
  chess::keep_recent_move_caches(dir + "/0.txt", /*keep=*/4);
  std::set<std::string> left;
  for (const auto& e : fs::directory_iterator(dir)) left.insert(e.path().filename().string());
  EXPECT_EQ(left, (std::set<std::string>{"0.txt", "7.txt", "8.txt", "9.txt", "other.bin"}));
  chess::keep_recent_move_caches(dir + "/0.txt");  // under the limit: nothing goes
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 5);
}

}  // namespace
}  // namespace stoch
