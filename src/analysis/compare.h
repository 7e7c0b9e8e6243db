// `stoch compare`: aggregates one metric over the seeds, and the tasks, of each group of runs
// and compares the groups with rliable's protocol (Agarwal et al. 2021): IQM, median, mean and
// optimality gap with stratified bootstrap CIs, probability of improvement averaged over
// tasks, performance profiles, and sample-efficiency curves (aggregate IQM against steps).
//
// Runs that differ in a task key (env.name by default) are on different tasks; groups are
// formed from the remaining config keys. Scores of several tasks are put on one scale with
// `--normalize FILE` (analysis/normalization.h).
//
// Output: a Markdown report on stdout. Files (compare.md, compare.csv, aggregates.csv,
// improvements.csv, curves.csv, profiles.csv and, when a Python with matplotlib is at hand,
// curves/profiles/aggregates .png/.svg) go to `out_dir`; when it is empty and the first path is
// a sweep directory (not a run), to FIRST_PATH/compare; otherwise no files are written.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "analysis/normalization.h"
#include "analysis/run_groups.h"
#include "analysis/stats.h"

namespace stoch::analysis {

struct CompareOptions {
  std::vector<std::string> paths;  // run or sweep directories
  std::string metric;              // empty: default_metric(paths, task_metrics)
  // Each task's primary metric (TaskEntry::primary_metric), filled in by the cli layer.
  std::map<std::string, std::string> task_metrics;
  std::vector<std::string> task_keys = {"env.name"};  // config keys naming a run's task
  // Keys that change no result (train::same_setup_keys), filled in by the cli layer: runs that
  // differ only in them form one group.
  std::vector<std::string> same_setup_keys;
  bool task_keys_given = false;  // by the user: a key no run has is then an error
  std::string normalize;         // per-task normalisation file; empty: raw scores
  bool task_bootstrap = false;   // resample tasks too (rliable's task_bootstrap)
  int64_t at_step = -1;          // compare values at this step (each run's last at or before)
  std::string out_dir;
  std::string mode = "auto";  // min | max | auto: metric_direction
  int reps = 2000;            // bootstrap resamples
  uint64_t seed = 0;          // bootstrap seed
  std::string python;         // interpreter for the plot; empty: $STOCH_PYTHON; none: no plot
  std::string plot_script;    // empty: scripts/plot_compare.py found from the source tree
};

struct Estimate {
  double value = 0;
  Interval ci{0, 0};  // 95% stratified bootstrap
};

// One group on one task, in the metric's own units.
struct TaskResult {
  std::vector<double> finals;  // each run's last value (at or before at_step), in run order
  int64_t final_step_min = 0, final_step_max = 0;
  double final_mean = 0;  // mean over runs of the last value
  double best_mean = 0;   // mean over runs of the run's best (min or max) value
  Estimate iqm;           // of `finals`
};

struct GroupSummary {
  std::string label;
  std::vector<TaskResult> tasks;  // in Comparison::tasks order
  TaskScores scores;              // [task][run] final values, normalised when asked for
  // rliable's aggregates of `scores` over tasks x runs. The gap is only defined for normalised
  // scores: its target is 1 (0 for a min/max-normalised metric to minimise).
  Estimate iqm, median, mean;
  std::optional<Estimate> gap;
  size_t runs() const;
};

// P(group x is better than group y): a run of x against a run of y on the same task,
// averaged over tasks.
struct Improvement {
  size_t x = 0, y = 0;
  double p = 0;
  Interval ci{0, 0};
};

// The aggregate at one step, over the runs of every task (scores normalised when asked for).
struct CurvePoint {
  int64_t step = 0;
  size_t n = 0;              // runs: only steps every run of the group logged are kept
  double mean = 0, iqm = 0;  // aggregate mean (of task means) and IQM
  Interval ci{0, 0};         // of the IQM
};

// Fraction of a group's runs (over tasks) scoring better than tau: the performance profile.
struct ProfilePoint {
  double tau = 0;
  Estimate fraction;
};

struct Comparison {
  std::string metric;
  bool minimize = true;         // the metric's direction, used for per-task values
  bool scores_minimize = true;  // the direction of `scores` (false after random/reference)
  int reps = 0;
  int64_t at_step = -1;  // -1: each run's last value
  bool task_bootstrap = false;
  std::vector<std::string> task_keys, tasks, following_keys;
  std::string normalization;  // the file; empty for raw scores
  std::vector<GroupSummary> groups;
  std::vector<Improvement> improvements;            // every ordered pair x != y
  std::vector<std::vector<CurvePoint>> curves;      // per group
  std::vector<std::vector<ProfilePoint>> profiles;  // per group, over one grid of taus
};

struct CompareSettings {
  std::string metric;
  bool minimize = true;
  int reps = 2000;
  uint64_t seed = 0;
  const Normalization* normalization = nullptr;  // null: raw scores
  bool task_bootstrap = false;
  int64_t at_step = -1;  // final values at this step; -1: each run's last
};

// Whether lower is better, read from the words of a metric's name: loss, mse, error, bpb, nll,
// kl, ce (cross-entropy), gap, dormant, perplexity, regret, seconds say lower; return, reward,
// accuracy, tau, align, rank, surplus, agreement, efficiency, score say higher. Nothing when the
// words say neither, both, or have no direction (std, entropy, length).
std::optional<bool> metric_direction(const std::string& metric);

// "min" -> true, "max" -> false, "auto" -> metric_direction, higher when it cannot tell (the
// report then warns). Throws InputError for any other mode.
bool minimize_metric(const std::string& metric, const std::string& mode);

// What the runs' task is judged by: the first run's config.yaml names the task, `task_metrics`
// maps it to its metric ("" to the default task's, for a config.yaml without `task`);
// InputError for a task it does not list.
std::string default_metric(const std::vector<std::string>& paths,
                           const std::map<std::string, std::string>& task_metrics);

// Throws InputError when the normalisation lacks one of the set's tasks.
Comparison compare_groups(const RunSet& set, const CompareSettings& settings);

std::string markdown_report(const Comparison& c);

// Writes compare.md, compare.csv (a row per group and task), aggregates.csv, improvements.csv,
// curves.csv and profiles.csv into out_dir.
void write_compare_files(const Comparison& c, const std::string& out_dir);

// The whole command; returns the exit code. Throws InputError for bad input.
int run_compare(const CompareOptions& options);

}  // namespace stoch::analysis
