// stoch resume: continues a run from its newest complete checkpoint, with overrides only of
// keys that cannot change what already happened.
#include <CLI/CLI.hpp>

#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "cli/checks.h"
#include "cli/command.h"
#include "cli/launch.h"
#include "cli/resume.h"
#include "cli/run_dir.h"
#include "core/config_tree.h"
#include "core/disk_space.h"
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

// config.yaml is a file anyone can edit: a key that cannot change on resume must hold what the
// newest checkpoint was trained with (an edited optim.lr, or a deleted line read as its default,
// resumed another run under the run's name). Checkpoints older than this check carry no config.
void check_config_matches_checkpoint(train::ExperimentConfig& cfg, const std::string& run_dir,
                                     const std::set<std::string>& resumable) {
  const auto ckpt = CheckpointStore(run_dir).load_latest_state();
  if (!ckpt || !ckpt->state.contains("config") || !ckpt->state["config"].is_string()) return;
  // Read through this version's schema, as config.yaml is: a key added since the checkpoint was
  // written takes its default on both sides. One this version no longer knows ends the check.
  std::optional<train::ExperimentConfig> trained_cfg;
  try {
    trained_cfg = train::parse_experiment(
        config::parse_text(ckpt->state["config"].get<std::string>(), ckpt->dir + "/state.json"));
  } catch (const InputError& e) {
    log::warn(stoch::str("config.yaml not compared with ", ckpt->dir,
                         "'s config, which this version reads otherwise: ", e.what()));
    return;
  }
  const auto d = first_config_difference(cfg, *trained_cfg, resumable);
  if (!d) return;
  throw InputError(stoch::str(run_dir, "/config.yaml: ", d->key, " is ", d->a, " but ", ckpt->dir,
                              " was trained with ", d->b,
                              "; only keys that may change on resume can differ (restore the "
                              "file, or train a new run)"));
}

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
  check_config_matches_checkpoint(cfg, a.run_dir, keys.resumable);
  // A run cannot be shortened: its config.yaml would say fewer steps than its checkpoints hold,
  // and sweeps and compare read it as stopped short. The step is the newest checkpoint that
  // verifies (the resume skips a damaged newer one too), read only when a newer one is listed.
  const CheckpointStore store(a.run_dir);
  bool steps_from_set = false;
  for (const auto& s : a.sets) steps_from_set |= config::split_assignment(s).first == "train.steps";
  if (const auto listed = store.steps(); !listed.empty() && cfg.train.steps < listed.back())
    if (const auto newest = store.load_latest(); newest && cfg.train.steps < newest->step)
      throw InputError(stoch::str(
          steps_from_set ? "--set train.steps=" : a.run_dir + "/config.yaml: train.steps ",
          cfg.train.steps, ": ", a.run_dir, " is already at step ", newest->step,
          " (its newest checkpoint); a run cannot be shortened (`stoch "
          "eval --checkpoint STEP` evaluates an earlier one)"));
  if (a.nproc > 1) {
    train::check_world_size_allowed(cfg, a.nproc, "--nproc");
    train::check_resume_world_size(a.run_dir, a.nproc,
                                   cfg.train.grad_accum);  // said once here, not once per rank
    return launch_local_ranks(a.nproc, rank_args({"resume", a.run_dir}, a.sets));
  }
  std::optional<RunLock> lock;  // held until the run ends
  return train::run_training(
      cfg, a.run_dir, /*resume=*/true,
      [&] {
        lock.emplace(a.run_dir);  // before anything in the folder changes
        noting_free_space(a.run_dir + "/log.txt", [&] { log::set_file(a.run_dir + "/log.txt"); });
        log::info(stoch::str("resuming ", a.run_dir));
      },
      // Once the checkpoint loaded: a resume it refuses leaves config.yaml as it was.
      [&] {
        if (!a.sets.empty()) write_run_config(cfg, a.run_dir);
      });
}

}  // namespace

int resume_run(const std::string& run_dir, const std::vector<std::string>& sets, int64_t nproc) {
  return resume(ResumeArgs{run_dir, sets, nproc});
}

namespace {

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
