// stoch resume: continues a run from its newest complete checkpoint, with overrides only of
// keys that cannot change what already happened.
#include <CLI/CLI.hpp>

#include <memory>
#include <optional>

#include "cli/checks.h"
#include "cli/command.h"
#include "cli/launch.h"
#include "cli/run_dir.h"
#include "core/config_tree.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/run_lock.h"
#include "core/strings.h"
#include "core/torch/checkpoint.h"
#include "train/experiment.h"
#include "train/rank_state.h"
#include "train/trainer.h"

namespace stoch::cli {
namespace {

struct ResumeArgs {
  std::string run_dir;
  std::vector<std::string> sets;
  int64_t nproc = 1;
};

int resume(const ResumeArgs& a) {
  check_not_launched(a.nproc);
  // Only keys that cannot change what already happened may be overridden.
  auto base = read_run_config(a.run_dir);
  const auto keys = train::list_keys(base);
  for (const auto& s : a.sets) {
    const std::string key = config::split_assignment(s).first;
    if (!keys.resumable.count(key)) {
      std::string allowed;
      for (const auto& k : keys.resumable) allowed += " " + k;
      throw InputError(
          stoch::str("--set ", s, ": ", key, " cannot change on resume (allowed:", allowed, ")"));
    }
  }
  auto cfg = read_run_config(a.run_dir, a.sets);
  // A run cannot be shortened: its config.yaml would say fewer steps than its checkpoints hold,
  // and sweeps and compare read it as stopped short. The step is the newest checkpoint that
  // verifies (the resume skips a damaged newer one too), read only when a newer one is listed.
  const CheckpointStore store(a.run_dir);
  if (const auto listed = store.steps(); !listed.empty() && cfg.train.steps < listed.back())
    if (const auto newest = store.load_latest(); newest && cfg.train.steps < newest->step)
      throw InputError(stoch::str("--set train.steps=", cfg.train.steps, ": ", a.run_dir,
                                  " is already at step ", newest->step,
                                  " (its newest checkpoint); a run cannot be shortened (`stoch "
                                  "eval --checkpoint STEP` evaluates an earlier one)"));
  if (a.nproc > 1) {
    train::check_resume_world_size(a.run_dir, a.nproc,
                                   cfg.train.grad_accum);  // said once here, not once per rank
    return launch_local_ranks(a.nproc, rank_args({"resume", a.run_dir}, a.sets));
  }
  std::optional<RunLock> lock;  // held until the run ends
  return train::run_training(cfg, a.run_dir, /*resume=*/true, [&] {
    lock.emplace(a.run_dir);  // before anything in the folder changes
    log::set_file(a.run_dir + "/log.txt");
    if (!a.sets.empty()) write_run_config(cfg, a.run_dir);
    log::info(stoch::str("resuming ", a.run_dir));
  });
}

const bool registered = register_command(
    "resume", "continue a run from its newest complete checkpoint", 20,
    [](CLI::App& cmd) -> CommandRun {
      auto a = std::make_shared<ResumeArgs>();
      cmd.add_option("run_dir", a->run_dir, "run directory")->required();
      cmd.add_option("--set", a->sets,
                     "override a key that cannot change the past (e.g. train.steps)");
      cmd.add_option(
             "--nproc", a->nproc,
             "data-parallel processes on this machine; another count than the run's reshards its "
             "optimizer state and keeps its micro-batches per step")
          ->check(integer_in(1));
      return [a] { return resume(*a); };
    });

}  // namespace
}  // namespace stoch::cli
