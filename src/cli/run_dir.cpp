#include "cli/run_dir.h"

#include <algorithm>
#include <filesystem>

#include "core/errors.h"
#include "core/strings.h"
#include "core/whole_file.h"

namespace stoch::cli {

train::ExperimentConfig read_run_config(const std::string& run_dir,
                                        const std::vector<std::string>& sets) {
  const std::string path = run_dir + "/config.yaml";
  if (!std::filesystem::is_regular_file(path))
    throw InputError(stoch::str(path, ": not found (is ", run_dir, " a run directory?)"));
  return train::parse_experiment(train::load_config(path, sets));
}

Checkpoint load_run_checkpoint(const std::string& run_dir, int64_t step) {
  CheckpointStore store(run_dir);
  if (step < 0) {
    if (auto latest = store.load_latest()) return std::move(*latest);
    throw InputError(stoch::str(run_dir, ": no complete checkpoint to load"));
  }
  const auto steps = store.steps();
  if (std::find(steps.begin(), steps.end(), step) == steps.end())
    throw InputError(stoch::str(
        "--checkpoint ", step, ": ", run_dir, " has no checkpoint of that step (",
        steps.empty() ? std::string("it has none") : "it has " + join(steps, ", "), ")"));
  return store.load(step);
}

void write_run_config(train::ExperimentConfig& cfg, const std::string& run_dir) {
  const std::string header = "# Resolved by stoch: every key with its value; the run's identity.\n";
  replace_file_durably(run_dir + "/config.yaml", header + train::to_yaml(cfg, true));
}

}  // namespace stoch::cli
