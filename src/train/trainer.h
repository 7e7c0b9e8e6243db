// Training a run: schedule, accumulation, clipping, AdamW, periodic evaluation, metrics,
// checkpoints, exact resume, rollbacks, and a clean stop on SIGINT/SIGTERM. The loop itself is
// train/training_loop.h.
#pragma once

#include <functional>
#include <string>

#include "train/experiment.h"

namespace stoch::train {

// Trains into `run_dir`. With `resume`, continues from the newest complete checkpoint there.
// `on_ready` runs once the task and model are built (so bad data files fail before it) and
// before anything is written: the caller creates the run directory there. `on_restored` runs
// after a resume loaded its checkpoint (which can still refuse it), before the first step.
// Returns the process exit code (0, or 130/143 after a signal-triggered checkpoint).
int run_training(ExperimentConfig& cfg, const std::string& run_dir, bool resume,
                 const std::function<void()>& on_ready = {},
                 const std::function<void()>& on_restored = {});

// Builds what a fresh one-process run builds before its first step (memory estimate, task and
// its data, model, optimiser, hooks) and discards it, writing nothing: throws what `train`
// would refuse. A cross-key rule that only the data or the network knows (model.n_head dividing
// model.d_model, a hook needing a language model) is found here, not by parsing.
void check_run(ExperimentConfig& cfg);

// Throws InputError when cfg's task cannot train on `world_size` ranks (it trains in one
// process only), naming `given_by` ("--nproc", "WORLD_SIZE") as what asked for them. Launchers
// call it before starting ranks, so that it is said once.
void check_world_size_allowed(const ExperimentConfig& cfg, int64_t world_size,
                              const std::string& given_by);

}  // namespace stoch::train
