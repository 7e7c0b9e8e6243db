// stoch data chess: positions labelled by Stockfish (data/chess/position_data.h), or, with
// --show, a dataset printed as CSV.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>

#include "cli/checks.h"
#include "cli/command.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/strings.h"
#include "data/chess/position_data.h"

namespace stoch::cli {
namespace {

struct ChessArgs {
  chess::GenerateOptions gen;
  int depth = -1;  // -1: 8 unless --nodes is given
  std::string show;
  int64_t limit = -1;
  std::string split = "both";
};

int show(const ChessArgs& a) {
  std::cout << "fen,win_prob,best_move\n";
  int64_t printed = 0;
  for (const std::string split : {"train", "val"}) {
    if (a.split != "both" && a.split != split) continue;
    for (const auto& r : chess::read_positions(a.show, split)) {
      if (a.limit >= 0 && printed >= a.limit) return kExitOk;
      char prob[32];
      std::snprintf(prob, sizeof prob, "%.6f", static_cast<double>(r.win_prob));
      std::cout << chess::record_fen(r) << "," << prob << "," << chess::record_move(r) << "\n";
      ++printed;
    }
  }
  return kExitOk;
}

int generate(ChessArgs a) {
  if (a.gen.out.empty()) throw InputError("data chess: give --out DIR (or --show DIR)");
  a.gen.limit.depth = a.depth >= 0 ? a.depth : (a.gen.limit.nodes > 0 ? 0 : 8);
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = chess::generate_positions(a.gen);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log::info(stoch::str("wrote ", a.gen.out, ": ", r.train, " train and ", r.val,
                       " val positions from ", r.games, " games", r.resumed ? " (resumed)" : "",
                       "; this call added ", r.added, " in ", format_number(s, 3), " s (",
                       format_number(static_cast<double>(r.added) / std::max(s, 1e-9), 4),
                       " positions/s), dropped ", r.duplicates,
                       " duplicates, restarted the "
                       "engine ",
                       r.restarts, " times"));
  return kExitOk;
}

const bool registered = register_command(
    "data chess",
    "chess positions labelled by Stockfish (win probability, best move), resumable; --show "
    "prints a dataset as CSV",
    72, [](CLI::App& cmd) -> CommandRun {
      auto a = std::make_shared<ChessArgs>();
      auto& g = a->gen;
      cmd.add_option("--out", g.out, "dataset folder (new, or one to continue)");
      cmd.add_option("--positions", g.positions, "labelled positions, train and val together")
          ->check(integer_in(1));
      cmd.add_option("--depth", a->depth, "labelling search depth (default 8 unless --nodes)")
          ->check(integer_in(1, 40));
      cmd.add_option("--nodes", g.limit.nodes, "labelling search node count instead of a depth")
          ->check(integer_in(1, 1'000'000'000));
      cmd.add_option("--seed", g.seed, "seed of the games")->check(integer_in(0));
      cmd.add_option("--engines", g.engines, "engine processes in parallel (0: one per core)")
          ->check(integer_in(0, 256));
      cmd.add_option("--random-plies", g.random_plies,
                     "each game opens with up to this many uniformly random moves")
          ->check(integer_in(0, 1000));
      cmd.add_option("--multipv", g.multipv, "later moves are drawn from this many best lines")
          ->check(integer_in(1, 64));
      cmd.add_option("--sample-depth", g.sample_depth,
                     "depth of the multi-PV search that picks each next move")
          ->check(integer_in(1, 40));
      cmd.add_option("--max-plies", g.max_plies, "a game stops after this many plies")
          ->check(integer_in(1, 100000));
      cmd.add_option("--val-fraction", g.val_fraction, "share of games held out")
          ->check(number_in(0, 1));
      cmd.add_option("--engine", g.engine,
                     "UCI engine (default: $STOCH_STOCKFISH, stockfish on PATH, "
                     "/usr/games/stockfish)");
      cmd.add_option("--engine-timeout", g.engine_timeout,
                     "seconds an engine may take to answer before it is restarted (a search: 60 "
                     "times this)")
          ->check(number_in(0, 3600, /*above_lo=*/true));
      cmd.add_option("--show", a->show, "print DIR's positions as fen,win_prob,best_move CSV");
      cmd.add_option("--limit", a->limit, "--show: at most this many lines")->check(integer_in(0));
      cmd.add_option("--split", a->split, "--show: train, val or both")
          ->check(CLI::IsMember({"train", "val", "both"}));
      return [a] { return a->show.empty() ? generate(*a) : show(*a); };
    });

}  // namespace
}  // namespace stoch::cli
