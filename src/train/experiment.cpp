#include "train/experiment.h"

#include <set>
#include <string>
#include <vector>

#include "core/errors.h"
#include "core/registry.h"
#include "core/strings.h"

namespace stoch::train {

template <class V>
void ExperimentConfig::visit(V& v) {
  v.section("run", run, "identity of the run: name, seed, device, precision");
  v("task", task, "what is trained; selects the task's own sections",
    config::Spec().one_of(registry<TaskEntry>().names()));
  if (!sections) sections = registry<TaskEntry>().get(task, "task").make_sections();
  sections->accept(v);
  v.section("optim", optim, "optimiser (AdamW)");
  v.section("schedule", schedule, "learning-rate schedule, a pure function of the step");
  v.section("train", train, "the loop: steps, batches, evaluation, checkpoints");
  v.section("log", log, "metrics and console output");
  v.section("dist", dist,
            "runs with several ranks (--nproc, torchrun): backend and failure detection");
  v.list("hooks", hooks,
         "diagnostics run on held-out data every `every` steps, logged under diag/");
}

namespace {

// The first component of every key the config declares ("run", "dqn", "hooks").
std::set<std::string> sections_of(ExperimentConfig& cfg) {
  std::set<std::string> out;
  for (const auto& key : list_keys(cfg).all) out.insert(key.substr(0, key.find('.')));
  return out;
}

// A top-level key that another task declares ("dqn" under task value_regression) gets a message
// saying so; the generic one guessed at a near spelling ("did you mean run?").
void check_sections_of_other_tasks(const config::Node& root, ExperimentConfig& cfg) {
  if (!root.is_map()) return;
  const auto ours = sections_of(cfg);
  for (const auto& [key, value] : root.map) {
    if (ours.count(key)) continue;
    std::vector<std::string> tasks;
    for (const auto& task : registry<TaskEntry>().names()) {
      if (task == cfg.task) continue;
      auto other = parse_experiment(config::parse_text(str("task: ", task, "\n"), "task"));
      if (sections_of(other).count(key)) tasks.push_back(task);
    }
    if (!tasks.empty())
      throw InputError(str(value.where(), ": ", key, " is a section of task ", join(tasks, ", "),
                           ", but this config's task is ", cfg.task));
  }
}

}  // namespace

ExperimentConfig parse_experiment(const config::Node& root) {
  ExperimentConfig cfg;
  config::Reader reader(&root, "", root.where());
  cfg.visit(reader);
  check_sections_of_other_tasks(root, cfg);
  reader.finish();
  return cfg;
}

config::Node load_config(const std::string& path, const std::vector<std::string>& overrides) {
  config::Node root = config::load_file(path);
  for (const auto& o : overrides) config::apply_override(root, o);
  return root;
}

std::string to_yaml(ExperimentConfig& cfg, bool with_docs) {
  config::Printer printer(0, with_docs);
  cfg.visit(printer);
  return printer.text();
}

config::KeyLister list_keys(ExperimentConfig& cfg) {
  config::KeyLister lister;
  cfg.visit(lister);
  return lister;
}

std::vector<std::string> same_setup_keys() {
  std::set<std::string> keys = {"run.seed"};
  for (const auto& task : registry<TaskEntry>().names()) {
    auto cfg = parse_experiment(config::parse_text(str("task: ", task, "\n"), "same_setup_keys"));
    const auto listed = list_keys(cfg).same_setup;
    keys.insert(listed.begin(), listed.end());
  }
  return {keys.begin(), keys.end()};
}

}  // namespace stoch::train
