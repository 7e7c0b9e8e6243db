// stoch compare RUN_DIR|SWEEP_DIR...: aggregates a metric over seeds and compares groups of
// runs (see analysis/compare.h).
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <string>

#include "analysis/compare.h"
#include "cli/checks.h"
#include "cli/command.h"
#include "core/registry.h"
#include "train/experiment.h"
#include "train/task.h"

namespace stoch::cli {
namespace {

#ifdef STOCH_PYTHON
constexpr const char* kDefaultPython = STOCH_PYTHON;
#else
constexpr const char* kDefaultPython = "";
#endif

struct CompareArgs {
  std::vector<std::string> paths;
  std::string metric;  // empty: the runs' task's own (analysis::default_metric)
  std::vector<std::string> task_keys = analysis::CompareOptions().task_keys;
  bool task_keys_given = false;
  std::string normalize;
  bool task_bootstrap = false;
  int64_t step = -1;
  std::string out;
  std::string mode = "auto";
  int reps = 2000;
  uint64_t seed = 0;
  std::string python;  // --python; else $STOCH_PYTHON; else the project's venv (kDefaultPython)
};

// Each registered task's primary metric: what compare reports when --metric is not given.
std::map<std::string, std::string> task_metrics() {
  std::map<std::string, std::string> out;
  for (const auto& name : registry<train::TaskEntry>().names())
    out[name] = registry<train::TaskEntry>().get(name, "task").primary_metric;
  out[""] = out[train::ExperimentConfig().task];  // a config.yaml without `task`: its default
  return out;
}

std::string default_metrics_help() {
  std::string help;
  for (const auto& [task, metric] : task_metrics())
    if (!metric.empty() && !task.empty())
      help += (help.empty() ? "" : ", ") + metric + " for " + task;
  return help;
}

int compare(const CompareArgs& args) {
  analysis::CompareOptions o;
  o.paths = args.paths;
  o.metric = args.metric;
  o.task_keys = args.task_keys;
  if (o.task_keys == std::vector<std::string>{"none"}) o.task_keys.clear();
  o.task_keys_given = args.task_keys_given;
  o.normalize = args.normalize;
  o.task_bootstrap = args.task_bootstrap;
  o.at_step = args.step;
  o.task_metrics = task_metrics();
  o.same_setup_keys = train::same_setup_keys();
  o.out_dir = args.out;
  o.mode = args.mode;
  o.reps = args.reps;
  o.seed = args.seed;
  o.python = args.python;
  if (o.python.empty())
    if (const char* env = std::getenv("STOCH_PYTHON")) o.python = env;
  if (o.python.empty()) o.python = kDefaultPython;
  return analysis::run_compare(o);
}

const bool registered = register_command(
    "compare",
    "compare groups of runs over seeds and tasks: IQM, median, mean, optimality gap with "
    "bootstrap CIs, probability of improvement, performance profiles, curves",
    100, [](CLI::App& cmd) -> CommandRun {
      auto a = std::make_shared<CompareArgs>();
      cmd.add_option("paths", a->paths,
                     "run directories or sweep directories (runs one or two levels down)")
          ->required();
      cmd.add_option(
          "--metric", a->metric,
          "metric name in metrics.jsonl, eval split preferred (default: the task's own: " +
              default_metrics_help() + ")");
      auto* task_key =
          cmd.add_option("--task-key", a->task_keys,
                         "config keys naming a run's task, comma-separated; runs differing in them "
                         "are on different tasks ('none': one task)")
              ->delimiter(',')
              ->capture_default_str();
      cmd.add_option("--normalize", a->normalize,
                     "YAML file of per-task scores mapped to 0 and 1: "
                     "'TASK: {random: R, reference: S}' or 'TASK: {min: A, max: B}'");
      cmd.add_option("--step", a->step,
                     "compare the values at this step (each run's last at or before it) "
                     "instead of the last ones; curves are unchanged")
          ->check(integer_in(0));
      cmd.add_flag("--task-bootstrap", a->task_bootstrap,
                   "resample tasks as well as runs in the bootstrap (for a population of tasks)");
      cmd.add_option(
          "--out", a->out,
          "folder for compare.md, its .csv tables and plots (default: SWEEP_DIR/compare when "
          "the first path is a sweep; otherwise tables are only printed)");
      cmd.add_option("--mode", a->mode,
                     "min, max, or auto (from the name's words: loss, nll, kl, ce, error, gap, "
                     "... say min; return, accuracy, rank, ... say max; else max, with a warning)")
          ->check(CLI::IsMember({"min", "max", "auto"}));
      cmd.add_option("--reps", a->reps, "bootstrap resamples")
          ->check(integer_in(1, std::numeric_limits<int>::max()));
      cmd.add_option("--seed", a->seed, "bootstrap seed")->check(integer_in(0));
      cmd.add_option("--python", a->python,
                     "Python with matplotlib for the plots (default: $STOCH_PYTHON, else the "
                     "venv stoch was built with; 'none': no plots)");
      return [a, task_key] {
        a->task_keys_given = task_key->count() > 0;
        return compare(*a);
      };
    });

}  // namespace
}  // namespace stoch::cli
