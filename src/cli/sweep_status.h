// Where each run of a sweep stands (`stoch sweep --status`, and what the sweep itself decides to
// skip, resume or start), and how long the rest may take at the pace the runs have shown.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "cli/sweep_command.h"

namespace stoch::cli {

enum class RunState { kFresh, kInterrupted, kFinished };

struct Progress {
  RunState state = RunState::kFresh;
  int64_t step = 0;             // the newest checkpoint's
  int64_t steps = 0;            // train.steps
  bool running = false;         // another process holds the run's lock
  int64_t logged_step = 0;      // the last training step in metrics.jsonl (may pass `step`)
  double seconds_per_step = 0;  // its recent training time per step; 0: none logged yet
  bool results_only = false;    // kept as config.yaml and metrics.jsonl only: trained elsewhere
  int64_t evaluated_step = -1;  // the last step with an evaluation line in metrics.jsonl
};

// `steps` is the run's train.steps as the sweep would start it, for runs with no config yet.
// Reads the last training line of metrics.jsonl for the run's pace.
Progress progress_of(const std::string& dir, int64_t steps);

// How this machine's time per step compares with that of the runs kept as results only (trained
// elsewhere, perhaps on another kind of CPU): the geometric mean, over the runs trained here, of
// each one's pace over the mean pace of the results-only runs of its grid point (`groups[i]`
// names it); nothing when no grid point has both.
std::optional<double> pace_here_over_kept(const std::vector<Progress>& runs,
                                          const std::vector<std::string>& groups);

// Seconds of training until every run has finished, `jobs` at a time: the running runs first,
// then the others in sweep order, each taking the next free slot. A run's pace is its own, else
// the mean of its grid point's, else the mean of the runs trained here, else the mean of all;
// nothing when no run has a pace. Paces of runs kept as results only are first scaled by
// pace_here_over_kept, so a sweep continued on another machine is timed at that machine's speed.
// Evaluation and checkpointing are not counted (the pace is training time).
std::optional<double> time_left(const std::vector<Progress>& runs,
                                const std::vector<std::string>& groups, int64_t jobs);

// Re-reads the folders of the runs `progress` does not yet know as finished, and which of them
// another process is writing. A finished run stays so; the others are few or have no folder
// yet, so a large sweep stays cheap.
void refresh_progress(const std::string& out, const std::vector<SweepRun>& runs,
                      std::vector<Progress>& progress);

// The training time left (time_left, each run's grid point its overrides but the seed).
std::optional<double> sweep_time_left(const std::vector<SweepRun>& runs,
                                      const std::vector<Progress>& progress, int64_t jobs);

// "K of N runs finished; about T of training left" (or without the estimate).
std::string sweep_summary(const std::vector<SweepRun>& runs, const std::vector<Progress>& progress,
                          int64_t jobs);

// Prints each run's state, checkpointed step and pace, the share of steps checkpointed, and the
// time left; fills in `running`.
int print_status(const std::string& out, const std::vector<SweepRun>& runs,
                 std::vector<Progress>& progress, int64_t jobs);

}  // namespace stoch::cli
