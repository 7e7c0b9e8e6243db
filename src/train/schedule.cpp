#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/errors.h"
#include "core/strings.h"

namespace stoch::train {

double lr_multiplier(const ScheduleConfig& cfg, int64_t step, int64_t total_steps) {
  if (step < cfg.warmup_steps)
    return static_cast<double>(step + 1) / static_cast<double>(cfg.warmup_steps);
  if (cfg.kind == "constant") return 1.0;
  const int64_t end = cfg.decay_steps > 0 ? cfg.decay_steps : total_steps;
  const double span = std::max<int64_t>(1, end - cfg.warmup_steps);
  const double progress = std::clamp(static_cast<double>(step - cfg.warmup_steps) / span, 0.0, 1.0);
  const double shape =
      cfg.kind == "cosine" ? 0.5 * (1.0 + std::cos(M_PI * progress)) : 1.0 - progress;
  return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape;
}

void check_schedule(const ScheduleConfig& cfg) {
  if (cfg.kind == "constant" || cfg.decay_steps == 0 || cfg.decay_steps > cfg.warmup_steps) return;
  throw InputError(str("schedule.decay_steps: ", cfg.decay_steps,
                       " is not after schedule.warmup_steps ", cfg.warmup_steps,
                       " (the rate would drop from its peak to the floor in one step); expected 0 "
                       "(train.steps) or above ",
                       cfg.warmup_steps));
}

}  // namespace stoch::train
