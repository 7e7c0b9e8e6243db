#include "train/trainer.h"

#include <memory>

#include "core/errors.h"
#include "core/registry.h"
#include "core/strings.h"
#include "train/task.h"
#include "train/training_loop.h"

namespace stoch::train {

int run_training(ExperimentConfig& cfg, const std::string& run_dir, bool resume,
                 const std::function<void()>& on_ready, const std::function<void()>& on_restored) {
  auto loop = std::make_unique<TrainingLoop>(cfg, run_dir, resume);
  int code = loop->run(on_ready, on_restored);
  // The run directory, its lock and its log file are set up already.
  while (code == kRolledBack) {
    // Weights that give a non-finite loss at step F came from update F - 1, which the
    // checkpoint of step F - 1 (when there is one) holds: go back further than it.
    const int64_t before = loop->failed_step() - 1;
    loop = std::make_unique<TrainingLoop>(cfg, run_dir, /*resume=*/true);
    loop->restore_before(before);
    code = loop->run({}, {});
  }
  return code;
}

void check_run(ExperimentConfig& cfg) {
  // Not resuming, so the loop reads nothing under the run directory, and only run() writes.
  TrainingLoop loop(cfg, /*run_dir=*/"", /*resume=*/false);
}

void check_world_size_allowed(const ExperimentConfig& cfg, int64_t world_size,
                              const std::string& given_by) {
  if (world_size > 1 && registry<TaskEntry>().get(cfg.task, "task").one_process)
    throw InputError(stoch::str(given_by, given_by == "--nproc" ? " " : "=", world_size, ": task ",
                                cfg.task,
                                " trains in one process only; drop --nproc (or torchrun)"));
}

}  // namespace stoch::train
