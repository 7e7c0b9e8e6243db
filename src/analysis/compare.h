// `stoch compare`: aggregates one metric over the seeds of each group of runs and compares the
// groups the rliable way (IQM with stratified bootstrap CIs, probability of improvement).
//
// Output: a Markdown table on stdout. Files (compare.md, compare.csv, curves.csv and, when a
// Python with matplotlib is at hand, curves.png/curves.svg) go to `out_dir`; when it is empty
// and the first path is a sweep directory (not a run), to FIRST_PATH/compare; otherwise no
// files are written (a single run or a list of runs has no natural home for them).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "analysis/run_groups.h"
#include "analysis/stats.h"

namespace stoch::analysis {

struct CompareOptions {
  std::vector<std::string> paths;  // run or sweep directories
  std::string metric;              // empty: default_metric(paths, task_metrics)
  // Each task's primary metric (TaskEntry::primary_metric), filled in by the cli layer.
  std::map<std::string, std::string> task_metrics;
  std::string out_dir;
  std::string mode = "auto";  // min | max | auto: min when the name says loss/mse/error/bpb
  int reps = 2000;            // bootstrap resamples
  uint64_t seed = 0;          // bootstrap seed
  std::string python;         // interpreter for the plot; empty: $STOCH_PYTHON; none: no plot
  std::string plot_script;    // empty: scripts/plot_compare.py found from the source tree
};

struct GroupSummary {
  std::string label;
  std::vector<double> finals;  // each run's last value, in run order
  int64_t final_step_min = 0, final_step_max = 0;
  double final_mean = 0;  // mean over runs of the last value
  double best_mean = 0;   // mean over runs of the run's best (min or max) value
  double iqm = 0;         // IQM of `finals`
  Interval iqm_ci{0, 0};
};

// P(group x is better than group y) for final values: lower is better when minimising.
struct Improvement {
  size_t x = 0, y = 0;
  double p = 0;
  Interval ci{0, 0};
};

struct CurvePoint {
  int64_t step = 0;
  size_t n = 0;  // runs (all of the group's: only steps every run logged are kept)
  double mean = 0, iqm = 0;
  Interval ci{0, 0};  // of the IQM
};

struct Comparison {
  std::string metric;
  bool minimize = true;
  int reps = 0;
  std::vector<GroupSummary> groups;
  std::vector<Improvement> improvements;        // every ordered pair x != y
  std::vector<std::vector<CurvePoint>> curves;  // per group
};

// "min" -> true, "max" -> false, "auto" -> whether the name says loss, mse, error or bpb.
// Throws InputError for any other mode.
bool minimize_metric(const std::string& metric, const std::string& mode);

// What the runs' task is judged by: the first run's config.yaml names the task, `task_metrics`
// maps it to its metric; InputError for a task it does not list.
std::string default_metric(const std::vector<std::string>& paths,
                           const std::map<std::string, std::string>& task_metrics);

Comparison compare_groups(const std::vector<RunGroup>& groups, const std::string& metric,
                          bool minimize, int reps = 2000, uint64_t seed = 0);

std::string markdown_report(const Comparison& c);

// Writes compare.md, compare.csv (one row per group) and curves.csv into out_dir.
void write_compare_files(const Comparison& c, const std::string& out_dir);

// The whole command; returns the exit code. Throws InputError for bad input.
int run_compare(const CompareOptions& options);

}  // namespace stoch::analysis
