// Finds run directories, reads one metric's curve from each, and groups runs that differ only
// in their seed: the unit that `stoch compare` aggregates over.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/config_tree.h"

namespace stoch::analysis {

// step -> value of one metric in one run.
using Curve = std::map<int64_t, double>;

struct Run {
  std::string dir;
  std::string name;     // run.name from config.yaml, else the directory's name
  config::Node config;  // config.yaml as written
  std::string split;    // the metrics.jsonl split the curve came from
  Curve curve;
};

struct RunGroup {
  std::string label;  // "model.d_model=128, optim.lr=0.001"; the run name when only one group
  std::vector<std::string> differing;  // "key=value" for every key on which groups differ
  std::vector<Run> runs;               // sorted by directory
};

// Config keys that do not change what a run computes beyond its seed (or not at all), so runs
// differing only in them belong to one group. A key names its whole subtree ("log").
const std::vector<std::string>& seed_only_keys();

// Run directories under `paths`, sorted and without duplicates. A path holding config.yaml is a
// run; otherwise its children and grandchildren holding config.yaml are (a sweep, possibly
// nested one level). Throws InputError naming a path that does not exist or holds no runs.
std::vector<std::string> find_run_dirs(const std::vector<std::string>& paths);

// The curve of `metric` in RUN_DIR/metrics.jsonl from lines of `split`, or, when no such line
// has it, from the first split (in file order) that does. Null values are skipped; a step
// logged twice (a resumed run re-logs steps) keeps its last value. `split_used` receives the
// split. Throws InputError naming the file when it is missing, malformed, or lacks the metric.
Curve read_metric_curve(const std::string& run_dir, const std::string& metric,
                        const std::string& split = "eval", std::string* split_used = nullptr);

// The config leaves as "a.b.c" -> scalar ("a.list.0" for list elements), without
// seed_only_keys(). Runs with equal fingerprints belong to one group.
std::map<std::string, std::string> config_fingerprint(const config::Node& config);

// Groups runs by config_fingerprint, in order of each group's first run, and labels them.
std::vector<RunGroup> group_runs(std::vector<Run> runs);

// find_run_dirs + read_metric_curve + config.yaml + group_runs.
std::vector<RunGroup> load_run_groups(const std::vector<std::string>& paths,
                                      const std::string& metric, const std::string& split = "eval");

}  // namespace stoch::analysis
