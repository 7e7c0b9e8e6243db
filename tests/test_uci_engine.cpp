// The UCI client against Debian's Stockfish: searches, mates, the win-probability formula,
// legal moves and successor FENs against python-chess on random positions, engines that cannot
// be run, and engines that crash or hang.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include "chess/chess_test.h"
#include "core/errors.h"
#include "core/rng.h"
#include "core/strings.h"
#include "data/chess/mate_puzzle.h"
#include "data/chess/uci_engine.h"
#include "test_util.h"

namespace stoch {
namespace {

using chess::RestartingEngine;
using chess::SearchLimit;
using chess::UciEngine;

const char* kStart = "rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR w KQkq - 0 1";

std::string input_error(const std::string& path) {
  try {
    UciEngine e(path, 2);
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

TEST(WinProbability, IsLichesssLogisticAndMatesAreCertain) {
  using chess::win_probability;
  EXPECT_DOUBLE_EQ(win_probability({false, 0}), 0.5);
  EXPECT_NEAR(win_probability({false, 100}), 1 / (1 + std::exp(-0.368208)), 1e-15);
  EXPECT_NEAR(win_probability({false, 100}), 0.59103, 1e-5);
  EXPECT_NEAR(win_probability({false, -300}) + win_probability({false, 300}), 1.0, 1e-15);
  EXPECT_EQ(win_probability({true, 3}), 1.0);
  EXPECT_EQ(win_probability({true, -1}), 0.0);
  EXPECT_EQ(win_probability({true, 0}), 0.0);  // mated now
}

TEST(UciEngine, SearchesToADepthWithSeveralLines) {
  STOCH_REQUIRE(test::stockfish_missing());
  UciEngine e(chess::find_stockfish());
  const auto legal = e.legal_moves(kStart);
  EXPECT_EQ(legal.size(), 20u);
  auto r = e.search(kStart, {}, SearchLimit{8, 0}, 3);
  ASSERT_EQ(r.lines.size(), 3u);
  EXPECT_NE(std::find(legal.begin(), legal.end(), r.best_move), legal.end()) << r.best_move;
  EXPECT_EQ(r.lines[0].pv.front(), r.best_move);
  std::set<std::string> firsts;
  for (const auto& l : r.lines) {
    EXPECT_EQ(l.depth, 8);
    EXPECT_FALSE(l.score.mate);
    EXPECT_LT(std::abs(l.score.value), 100);  // the start is about level
    firsts.insert(l.pv.front());
  }
  EXPECT_EQ(firsts.size(), 3u);
  EXPECT_GE(r.lines[0].score.value, r.lines[2].score.value);
  // A node budget, and moves applied after the FEN.
  r = e.search(kStart, {"e2e4", "e7e5"}, SearchLimit{0, 5000});
  EXPECT_EQ(r.lines.size(), 1u);
  EXPECT_EQ(e.fen_after(kStart, {"e2e4", "e7e5"}),
            "rnbqkbnr/pppp1ppp/8/4p3/4P3/8/PPPP1PPP/RNBQKBNR w KQkq - 0 2");
}

TEST(UciEngine, SeesMatesFromBothSides) {
  STOCH_REQUIRE(test::stockfish_missing());
  UciEngine e(chess::find_stockfish());
  // White mates with Qh5xf7 (scholar's mate set up).
  const std::string mate_in_1 = "r1bqkbnr/pppp1ppp/2n5/4p2Q/2B1P3/8/PPPP1PPP/RNB1K1NR w KQkq - 2 3";
  const auto r = e.search(mate_in_1, {}, SearchLimit{6, 0});
  EXPECT_EQ(r.best_move, "h5f7");
  EXPECT_TRUE(r.lines[0].score.mate);
  EXPECT_EQ(r.lines[0].score.value, 1);
  EXPECT_EQ(chess::win_probability(r.lines[0].score), 1.0);
  // Black to move after it: mated, no legal move.
  const std::string mated = e.fen_after(mate_in_1, {"h5f7"});
  EXPECT_TRUE(e.legal_moves(mated).empty());
  const auto m = e.search(mated, {}, SearchLimit{4, 0});
  EXPECT_EQ(m.best_move, "(none)");
  EXPECT_TRUE(m.lines[0].score.mate);
  EXPECT_EQ(m.lines[0].score.value, 0);
  EXPECT_EQ(chess::win_probability(m.lines[0].score), 0.0);
  // Stalemate: no legal move either, and a level score (found by the generator at depth 4).
  for (const std::string stalemate :
       {"7k/5Q2/6K1/8/8/8/8/8 b - - 0 1", "7Q/8/8/p7/P7/8/3Q2p1/1k4K1 b - - 0 56"}) {
    const auto s = e.search(stalemate, {}, SearchLimit{4, 0});
    EXPECT_EQ(s.best_move, "(none)") << stalemate;
    ASSERT_EQ(s.lines.size(), 1u) << stalemate;
    EXPECT_FALSE(s.lines[0].score.mate) << stalemate;
    EXPECT_EQ(s.lines[0].score.value, 0) << stalemate;
  }
}

// Positions reached by random legal moves from the start (up to 120 plies; games that end are
// restarted): the engine's legal moves and the FEN after each of them equal python-chess's.
TEST(UciEngine, LegalMovesAndFensMatchPythonChess) {
  STOCH_REQUIRE(test::stockfish_missing());
  STOCH_REQUIRE(test::python_missing("chess"));
  UciEngine e(chess::find_stockfish());
  const std::string dir = test::temp_dir("uci");
  std::ofstream out(dir + "/positions.jsonl");
  Rng rng(11);
  std::string fen = kStart;
  int plies = 0, positions = 0, promotions = 0, castles = 0, en_passant = 0;
  for (; positions < 2000; ++positions) {
    const auto moves = e.legal_moves(fen);
    std::vector<std::string> after;
    for (const auto& m : moves) after.push_back(e.fen_after(fen, {m}));
    out << "{\"fen\": \"" << fen << "\", \"moves\": [";
    for (size_t i = 0; i < moves.size(); ++i) out << (i ? ", " : "") << '"' << moves[i] << '"';
    out << "], \"after\": [";
    for (size_t i = 0; i < after.size(); ++i) out << (i ? ", " : "") << '"' << after[i] << '"';
    out << "]}\n";
    for (const auto& m : moves) {
      promotions += m.size() == 5;
      castles += (m == "e1g1" || m == "e1c1" || m == "e8g8" || m == "e8c8") &&
                 fen.find(" w ") != std::string::npos;
    }
    en_passant += split(fen, ' ').at(3) != "-";  // the FEN's en passant field
    if (moves.empty() || ++plies >= 120) {
      fen = kStart;
      plies = 0;
      continue;
    }
    fen = after[rng.below(after.size())];
  }
  out.close();
  const auto r = test::run_command("'" + test::python_path() + "' '" +
                                   test::source_path("tests/chess/check_positions.py") + "' '" +
                                   dir + "/positions.jsonl' 2>&1");
  EXPECT_EQ(r.code, 0) << r.output.substr(0, 4000);
  EXPECT_NE(r.output.find("2000"), std::string::npos) << r.output.substr(0, 4000);
  // The walk reaches the rules' corners: promotions, castling and en passant squares.
  EXPECT_GT(promotions, 0);
  EXPECT_GT(castles, 0);
  EXPECT_GT(en_passant, 0);
}

TEST(UciEngine, WhatIsNotAnEngineIsAnInputErrorNamingIt) {
  EXPECT_NE(input_error("/nonexistent/stockfish").find("/nonexistent/stockfish: not an executable"),
            std::string::npos);
  // cat echoes "uci" back and never says uciok; true exits at once.
  EXPECT_NE(input_error("/bin/cat").find("/bin/cat: not a UCI engine"), std::string::npos)
      << input_error("/bin/cat");
  EXPECT_NE(input_error("/bin/true").find("/bin/true: not a UCI engine"), std::string::npos)
      << input_error("/bin/true");
  const std::string dir = test::temp_dir("uci");
  test::write_text(dir + "/not-executable", "uciok\n");
  EXPECT_NE(input_error(dir + "/not-executable").find("not an executable file"), std::string::npos);
}

// An engine killed between two calls is restarted, and the call retried, transparently.
// Mate puzzles as the chess task prepares them: the ranking search (every legal move, depth 6,
// from a cleared engine), then find_mate_puzzle. Positions with two moves that mate in 2 (each
// checked by exhaustive search with python-chess), whose second solution the ranking scored as a
// longer mate or in centipawns, so that they passed as puzzles and a network playing the other
// solution was scored as missing it; and puzzles with one solution.
TEST(MatePuzzle, TwoSolutionsAreNoPuzzleAndOneIs) {
  STOCH_REQUIRE(test::stockfish_missing());
  RestartingEngine e(chess::find_stockfish());
  e.set_option("Threads", "1");
  const auto puzzle = [&](const std::string& fen) {
    const auto moves = e.legal_moves(fen);
    e.new_game();
    const auto ranking = e.search(fen, {}, SearchLimit{6, 0, {}}, static_cast<int>(moves.size()));
    return chess::find_mate_puzzle(e, fen, moves, ranking);
  };
  for (const char* fen :
       {"2b4K/6r1/np3b2/2P5/P1P5/4k3/2P5/8 b - - 0 43", "8/7R/2K5/7R/k7/8/8/8 w - - 0 1",
        "8/1R6/8/4R3/3K4/8/8/2k5 w - - 0 1", "5k2/2P5/1r6/4r3/8/8/6K1/2q5 b - - 1 67",
        "4r1k1/6pp/3p1n2/3P1p2/PPp2p2/8/3K2P1/q7 b - - 4 37", "5R2/7k/8/4K3/5Q2/8/8/8 w - - 0 1",
        "5Q1Q/8/6K1/8/8/8/8/2k5 w - - 3 94"})
    EXPECT_FALSE(puzzle(fen)) << fen;
  auto one = puzzle("5R2/2K5/8/8/7R/8/8/4k3 w - - 0 1");  // only Rh2 mates in 2
  ASSERT_TRUE(one);
  EXPECT_EQ(one->mate_in, 2);
  EXPECT_EQ(one->solution, "h4h2");
  one = puzzle("6k1/5ppp/8/8/8/8/8/R5K1 w - - 0 1");  // the back rank: only Ra8 mates in 1
  ASSERT_TRUE(one);
  EXPECT_EQ(one->mate_in, 1);
  EXPECT_EQ(one->solution, "a1a8");
  EXPECT_FALSE(puzzle(kStart));
}

TEST(RestartingEngine, RestartsAKilledEngineAndRetries) {
  STOCH_REQUIRE(test::stockfish_missing());
  RestartingEngine e(chess::find_stockfish());
  EXPECT_EQ(e.legal_moves(kStart).size(), 20u);
  ::kill(e.pid(), SIGKILL);
  const auto r = e.search(kStart, {"e2e4"}, SearchLimit{5, 0});
  EXPECT_FALSE(r.best_move.empty());
  EXPECT_EQ(e.restarts(), 1);
  EXPECT_EQ(e.legal_moves(kStart).size(), 20u);
  EXPECT_EQ(e.restarts(), 1);
}

// An engine that answers the handshake but never a search: each attempt times out, the engine
// is restarted, and after the retries the error reaches the caller.
TEST(RestartingEngine, AnEngineThatStopsAnsweringTimesOutAndIsRestarted) {
  const std::string dir = test::temp_dir("uci");
  const std::string fake = dir + "/hanging-engine";
  test::write_text(fake,
                   "#!/bin/sh\n"
                   "while read line; do\n"
                   "  case \"$line\" in\n"
                   "    uci) echo 'id name hanging'; echo uciok;;\n"
                   "    isready) echo readyok;;\n"
                   "    quit) exit 0;;\n"
                   "  esac\n"
                   "done\n");
  test::fs::permissions(fake, test::fs::perms::owner_all);
  RestartingEngine e(fake, /*retries=*/2, /*timeout_s=*/2);
  EXPECT_THROW(e.search(kStart, {}, SearchLimit{5, 0}, 1, /*timeout_s=*/0.3), chess::EngineError);
  EXPECT_EQ(e.restarts(), 2);
}

// An engine that dies in its first search: the fresh one gets the options set before the crash,
// and the search is answered.
TEST(RestartingEngine, AFreshEngineGetsTheOptionsAgain) {
  const std::string dir = test::temp_dir("uci");
  const std::string fake = dir + "/crashing-engine";
  std::string script = R"(#!/bin/sh
while read line; do
  echo "$line" >> DIR/heard
  case "$line" in
    uci) echo 'id name crashing'; echo uciok;;
    isready) echo readyok;;
    go*) if [ -e DIR/crashed ]; then
           echo 'info depth 1 multipv 1 score cp 7 pv e2e4'; echo 'bestmove e2e4'
         else touch DIR/crashed; exit 1; fi;;
    quit) exit 0;;
  esac
done
)";
  for (size_t at; (at = script.find("DIR")) != std::string::npos;) script.replace(at, 3, dir);
  test::write_text(fake, script);
  test::fs::permissions(fake, test::fs::perms::owner_all);
  RestartingEngine e(fake, /*retries=*/1, /*timeout_s=*/5);
  EXPECT_EQ(e.name(), "crashing");
  e.set_option("Threads", "1");
  e.new_game();
  const auto r = e.search(kStart, {}, SearchLimit{1, 0});
  EXPECT_EQ(r.best_move, "e2e4");
  EXPECT_EQ(e.restarts(), 1);
  const auto heard = test::read_text(dir + "/heard");
  size_t set = 0;
  for (size_t at = heard.find("setoption name Threads value 1"); at != std::string::npos;
       at = heard.find("setoption name Threads value 1", at + 1))
    ++set;
  EXPECT_EQ(set, 2u) << heard;  // once on the first engine, again on the fresh one
}

}  // namespace
}  // namespace stoch
