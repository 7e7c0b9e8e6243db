// `stoch compare RUN_DIR|SWEEP_DIR...`: aggregates a metric over seeds and compares groups of
// runs (see analysis/compare.h). Kept apart from commands.h so that it needs no LibTorch.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace stoch::cli {

struct CompareArgs {
  std::vector<std::string> paths;
  std::string metric;  // empty: the runs' task's own (analysis::default_metric)
  std::string out;
  std::string mode = "auto";
  int reps = 2000;
  uint64_t seed = 0;
  std::string python;          // --python; else $STOCH_PYTHON; else default_python
  std::string default_python;  // set by the caller (e.g. the project's venv); may be empty
};

// Adds the `compare` subcommand bound to `args`; returns it so the caller can test `*sub`.
CLI::App* add_compare_command(CLI::App& app, CompareArgs& args);

int compare(const CompareArgs& args);

}  // namespace stoch::cli
