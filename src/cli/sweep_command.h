// `stoch sweep`: a grid of configs times seeds, each a run directory under one sweep folder.
// Re-running the same command skips finished runs and resumes interrupted ones.
#pragma once

#include <string>
#include <vector>

namespace stoch::cli {

struct SweepArgs {
  std::string config;
  std::vector<std::string> grid;  // "KEY=V1,V2,..."
  std::vector<std::string> sets;  // fixed overrides for every run
  int64_t seeds = 1;
  int64_t first_seed = 1;
  int64_t jobs = 1;
  std::string out;
  bool status = false;  // print each run's state and start nothing
};

int sweep(const SweepArgs& a);

// One run of a sweep: its folder name and its --set overrides (grid values, then run.seed).
struct SweepRun {
  std::string name;
  std::vector<std::string> sets;
};

// The cartesian product of the grid, times the seeds, in a stable order.
// Throws InputError for a malformed --grid.
std::vector<SweepRun> expand_sweep(const SweepArgs& a);

}  // namespace stoch::cli
