#include "train/trainer.h"

#include "train/training_loop.h"

namespace stoch::train {

int run_training(ExperimentConfig& cfg, const std::string& run_dir, bool resume,
                 const std::function<void()>& on_ready) {
  int code = TrainingLoop(cfg, run_dir, resume).run(on_ready);
  // The run directory, its lock and its log file are set up already.
  while (code == kRolledBack) code = TrainingLoop(cfg, run_dir, /*resume=*/true).run({});
  return code;
}

}  // namespace stoch::train
