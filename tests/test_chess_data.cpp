// stoch data chess: a generated dataset round-trips (labels, legality, the split by game, the
// CSV view), generation does not depend on the number of engines and continues exactly after
// SIGKILL, and bad input exits 2 naming what was wrong.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "chess/chess_test.h"
#include "core/errors.h"
#include "core/strings.h"
#include "data/chess/position_data.h"
#include "test_util.h"

namespace stoch {
namespace {

std::string generate(const std::string& out, int positions, const std::string& extra = "") {
  return "data chess --out " + out + " --positions " + std::to_string(positions) +
         " --depth 5 --max-plies 60 --seed 3 " + extra;
}

TEST(ChessData, GeneratedPositionsRoundTrip) {
  STOCH_REQUIRE(test::stockfish_missing());
  const std::string dir = test::temp_dir("chess");
  auto r = test::run_stoch(generate(dir + "/d", 300, "--val-fraction 0.3"));
  ASSERT_EQ(r.code, 0) << r.output;
  const auto train = chess::read_positions(dir + "/d", "train");
  const auto val = chess::read_positions(dir + "/d", "val");
  EXPECT_EQ(train.size() + val.size(), 300u);
  EXPECT_FALSE(val.empty());
  std::set<std::string> keys;
  std::set<uint32_t> train_games, val_games;
  chess::UciEngine engine(chess::find_stockfish());
  size_t checked = 0;
  for (const auto* split : {&train, &val}) {
    for (const auto& rec : *split) {
      const std::string fen = chess::record_fen(rec);
      const auto f = stoch::split(fen, ' ');
      keys.insert(f[0] + f[1] + f[2] + f[3]);  // no position twice, clocks aside
      (split == &train ? train_games : val_games).insert(rec.game);
      EXPECT_EQ(rec.win_prob,
                static_cast<float>(chess::win_probability({rec.mate != 0, rec.score})));
      if (checked++ % 10 == 0) {
        const auto legal = engine.legal_moves(fen);
        EXPECT_NE(std::find(legal.begin(), legal.end(), chess::record_move(rec)), legal.end())
            << fen << " " << chess::record_move(rec);
      }
    }
  }
  EXPECT_EQ(keys.size(), 300u);
  for (uint32_t g : val_games) EXPECT_EQ(train_games.count(g), 0u) << "game " << g;

  // --show: a header, then fen,win_prob,best_move, train first.
  r = test::run_stoch("data chess --show " + dir + "/d --limit 3");
  ASSERT_EQ(r.code, 0) << r.output;
  const auto lines = stoch::split(r.output, '\n');
  ASSERT_GE(lines.size(), 4u) << r.output;
  EXPECT_EQ(lines[0], "fen,win_prob,best_move");
  EXPECT_EQ(lines[1].substr(0, lines[1].find(',')), chess::record_fen(train[0]));
  EXPECT_NE(lines[1].find("," + chess::record_move(train[0])), std::string::npos);

  // Asking for more continues the same folder; the first 300 stay as they were.
  const std::string before = test::read_text(dir + "/d/train.bin");
  r = test::run_stoch(generate(dir + "/d", 400, "--val-fraction 0.3"));
  ASSERT_EQ(r.code, 0) << r.output;
  EXPECT_NE(r.output.find("(resumed)"), std::string::npos) << r.output;
  EXPECT_EQ(test::read_text(dir + "/d/train.bin").substr(0, before.size()), before);
  EXPECT_EQ(chess::read_positions(dir + "/d", "train").size() +
                chess::read_positions(dir + "/d", "val").size(),
            400u);
}

// One engine straight through, against two engines killed at a random moment and rerun: the
// same bytes.
TEST(ChessData, TwoEnginesKilledAndRerunWriteWhatOneEngineWrites) {
  STOCH_REQUIRE(test::stockfish_missing());
  const std::string dir = test::temp_dir("chess");
  auto r = test::run_stoch(generate(dir + "/straight", 1500, "--engines 1"));
  ASSERT_EQ(r.code, 0) << r.output;
  std::mt19937 rng(std::random_device{}());
  const std::string killed = dir + "/killed";
  auto args = stoch::split(generate(killed, 1500, "--engines 2"), ' ');
  args.erase(std::remove(args.begin(), args.end(), std::string()), args.end());
  const pid_t pid = test::spawn_stoch(args, dir + "/killed.log");
  ASSERT_TRUE(test::wait_for([&] { return test::fs::exists(killed + "/meta.json"); }, 60));
  std::this_thread::sleep_for(std::chrono::microseconds(rng() % 500000));
  ::kill(pid, SIGKILL);
  test::wait_exit(pid);
  r = test::run_stoch(generate(killed, 1500, "--engines 2"));
  ASSERT_EQ(r.code, 0) << r.output;
  for (const char* file : {"/train.bin", "/val.bin"})
    EXPECT_EQ(test::read_text(killed + file), test::read_text(dir + "/straight" + file)) << file;
  EXPECT_EQ(
      chess::read_positions(killed, "train").size() + chess::read_positions(killed, "val").size(),
      1500u);
}

TEST(ChessData, BadInputExitsTwoNamingIt) {
  const std::string dir = test::temp_dir("chess");
  auto expect = [](const std::string& args, const std::string& text) {
    const auto r = test::run_stoch(args);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(text), std::string::npos) << args << "\n" << r.output;
  };
  expect("data chess --out " + dir + "/a --depth 0", "--depth");
  expect("data chess --out " + dir + "/a --depth 41", "--depth");
  expect("data chess --out " + dir + "/a --depth 8 --nodes 1000", "--depth, --nodes");
  // A game that long could pass the halfmove clock of 999 the records hold.
  expect("data chess --out " + dir + "/a --max-plies 1000", "--max-plies 1000: expected 1 to 999");
  expect("data chess --out " + dir + "/a --engine /bin/cat --positions 5 --engine-timeout 0.5",
         "/bin/cat: not a UCI engine");
  expect("data chess --show " + dir + "/nothing", dir + "/nothing/meta.json: not found");
  // Settings that play one game for ever, or reach fewer positions than asked for, ran on for
  // ever without a word.
  expect("data chess --out " + dir + "/same --random-plies 0 --multipv 1",
         "--random-plies 0 with --multipv 1: every game would be the same game");
  if (!test::stockfish_missing().empty()) return;
  // A dataset of another version, a malformed FEN, and a folder made with other settings.
  ASSERT_EQ(test::run_stoch(generate(dir + "/d", 20)).code, 0);
  std::string meta = test::read_text(dir + "/d/meta.json");
  test::write_text(dir + "/d/meta.json",
                   stoch::str(meta.substr(0, meta.find("\"version\": 1")), "\"version\": 9",
                              meta.substr(meta.find("\"version\": 1") + 12)));
  expect("data chess --show " + dir + "/d", "meta.json: version 9");
  test::write_text(dir + "/d/meta.json", meta);
  std::string bin = test::read_text(dir + "/d/train.bin");
  bin[128 + 3] = 'X';  // the second record's board
  test::write_text(dir + "/d/train.bin", bin);
  expect("data chess --show " + dir + "/d", "train.bin: record 1: malformed FEN");
  expect("data chess --out " + dir + "/d --positions 40 --depth 5 --max-plies 60 --seed 4",
         "generated with settings");
  expect("data chess --out " + dir + "/few --positions 50 --depth 1 --max-plies 1",
         "--positions 50: the last 1000 games added no new position");
}

}  // namespace
}  // namespace stoch
