// What a run's rollbacks changed (train.on_nonfinite: rollback): how many there were and the
// factor they left on the learning rate. Kept in RUN_DIR/rollbacks.json, outside the
// checkpoints, because a rollback restores a checkpoint written before it: the lowered rate
// must survive the restore and any later resume.
#pragma once

#include <cstdint>
#include <string>

namespace stoch::train {

struct Rollbacks {
  int64_t count = 0;
  double lr_scale = 1.0;

  // The run's record, or none yet. Throws InputError naming the file when it is malformed.
  static Rollbacks read(const std::string& run_dir);
  // Replaces the record durably, adding a line for this rollback at `step`.
  void write(const std::string& run_dir, int64_t step, const std::string& why) const;
};

}  // namespace stoch::train
