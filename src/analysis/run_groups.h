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
  std::string task;             // the values of the task keys ("breakout"); "" when no run has one
  bool being_written = false;   // a train or resume held its lock when it was read
  int64_t steps = -1;           // train.steps from config.yaml; -1 when absent
  int64_t last_null_step = -1;  // the last step of the curve's split logging the metric as null
};

struct RunGroup {
  std::string label;  // "model.d_model=128, optim.lr=0.001"; the run name when only one group
  std::vector<std::string> differing;  // "key=value" for every key on which groups differ
  std::vector<Run> runs;               // sorted by directory
};

// Run directories under `paths`, sorted and without duplicates. A path holding config.yaml is a
// run; otherwise its children and grandchildren holding config.yaml are (a sweep, possibly
// nested one level). Throws InputError naming a path that does not exist or holds no runs.
std::vector<std::string> find_run_dirs(const std::vector<std::string>& paths);

// The curve of `metric` in RUN_DIR/metrics.jsonl from lines of `split`, or, when no such line
// has it, from the first split (in file order) that does. Null values (a non-finite value, as
// the metrics writer writes it) are skipped, and the last step that logged one in the chosen
// split goes to `last_null_step` (-1: none); a step logged twice (a resumed run re-logs steps)
// keeps its last value. `split_used` receives the split. Throws InputError naming the file when
// it is missing, malformed, or has no finite value of the metric.
Curve read_metric_curve(const std::string& run_dir, const std::string& metric,
                        const std::string& split = "eval", std::string* split_used = nullptr,
                        int64_t* last_null_step = nullptr);

// The config leaves as "a.b.c" -> scalar ("a.list.0" for list elements), without run.seed and
// the `same_setup` keys: those that change no result beyond the seed's (train::same_setup_keys,
// which the schema marks; a key names its whole subtree). Runs with equal fingerprints belong to
// one group.
std::map<std::string, std::string> config_fingerprint(
    const config::Node& config, const std::vector<std::string>& same_setup = {});

// Groups runs by config_fingerprint less `ignored` keys (and their subtrees), in order of each
// group's first run, and labels them.
std::vector<RunGroup> group_runs(std::vector<Run> runs,
                                 const std::vector<std::string>& ignored = {});

// Runs on one or more tasks: the unit of rliable's protocol. A run's task is named by the
// values of the task keys (for example env.name); groups are formed from the other keys.
struct RunSet {
  std::vector<std::string> task_keys;       // as asked for
  std::vector<std::string> tasks;           // sorted; {""} when no run has a task key
  std::vector<std::string> following_keys;  // keys that change with the task only (see below)
  std::vector<RunGroup> groups;             // each holding runs on every task
  // Runs still being written that have no value of the metric yet, left out (folder names).
  std::vector<std::string> not_yet;
  std::vector<std::string> absent_task_keys;  // task keys no run's config has
};

// Names each run's task ("a" for one key, "a, b" for two; "(unset)" for a key some runs lack),
// then groups the runs. With several tasks, a key that is equal within every task and differs
// between two (a support sized per game, say) follows the task: it does not split groups, and
// is reported. Throws InputError naming a group that has no run on some task.
RunSet make_run_set(std::vector<Run> runs, const std::vector<std::string>& task_keys,
                    const std::vector<std::string>& same_setup = {});

// find_run_dirs + read_metric_curve + config.yaml + make_run_set. Throws InputError when no
// run has a value of `metric` (every run still being written, none having logged it yet).
RunSet load_run_set(const std::vector<std::string>& paths, const std::string& metric,
                    const std::vector<std::string>& task_keys, const std::string& split = "eval",
                    const std::vector<std::string>& same_setup = {});

// load_run_set's groups, with no task keys: every run on one task.
std::vector<RunGroup> load_run_groups(const std::vector<std::string>& paths,
                                      const std::string& metric, const std::string& split = "eval",
                                      const std::vector<std::string>& same_setup = {});

}  // namespace stoch::analysis
