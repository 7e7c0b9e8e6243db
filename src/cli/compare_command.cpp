#include "cli/compare_command.h"

#include <cstdlib>
#include <map>
#include <string>

#include "analysis/compare.h"
#include "cli/checks.h"
#include "core/registry.h"
#include "train/task.h"

namespace stoch::cli {
namespace {

// Each registered task's primary metric: what compare reports when --metric is not given.
std::map<std::string, std::string> task_metrics() {
  std::map<std::string, std::string> out;
  for (const auto& name : registry<train::TaskEntry>().names())
    out[name] = registry<train::TaskEntry>().get(name, "task").primary_metric;
  return out;
}

std::string default_metrics_help() {
  std::string help;
  for (const auto& [task, metric] : task_metrics())
    if (!metric.empty()) help += (help.empty() ? "" : ", ") + metric + " for " + task;
  return help;
}

}  // namespace

CLI::App* add_compare_command(CLI::App& app, CompareArgs& args) {
  auto* c = app.add_subcommand(
      "compare",
      "compare groups of runs over seeds: IQM, bootstrap CIs, probability of improvement");
  c->add_option("paths", args.paths,
                "run directories or sweep directories (runs one or two levels down)")
      ->required();
  c->add_option("--metric", args.metric,
                "metric name in metrics.jsonl, eval split preferred (default: the task's own: " +
                    default_metrics_help() + ")");
  c->add_option("--out", args.out,
                "folder for compare.md/.csv, curves.csv and plots (default: SWEEP_DIR/compare when "
                "the first path is a sweep; otherwise tables are only printed)");
  c->add_option("--mode", args.mode,
                "min, max, or auto (min when the name says loss/mse/error/bpb)")
      ->check(CLI::IsMember({"min", "max", "auto"}));
  c->add_option("--reps", args.reps, "bootstrap resamples")
      ->check(integer_in(1, std::numeric_limits<int>::max()));
  c->add_option("--seed", args.seed, "bootstrap seed")->check(integer_in(0));
  c->add_option("--python", args.python,
                "Python with matplotlib for the plots (default: $STOCH_PYTHON)");
  return c;
}

int compare(const CompareArgs& args) {
  analysis::CompareOptions o;
  o.paths = args.paths;
  o.metric = args.metric;
  o.task_metrics = task_metrics();
  o.out_dir = args.out;
  o.mode = args.mode;
  o.reps = args.reps;
  o.seed = args.seed;
  o.python = args.python;
  if (o.python.empty())
    if (const char* env = std::getenv("STOCH_PYTHON")) o.python = env;
  if (o.python.empty()) o.python = args.default_python;
  return analysis::run_compare(o);
}

}  // namespace stoch::cli
