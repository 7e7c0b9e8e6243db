// stoch train: starts a run from a config in a new run directory (or as --nproc local ranks).
#include <unistd.h>
#include <CLI/CLI.hpp>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>

#include "cli/checks.h"
#include "cli/command.h"
#include "cli/launch.h"
#include "cli/resume.h"
#include "cli/run_dir.h"
#include "cli/sweep_status.h"
#include "core/disk_space.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/output_dir.h"
#include "core/run_lock.h"
#include "core/strings.h"
#include "core/torch/checkpoint.h"
#include "core/whole_file.h"
#include "train/experiment.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace stoch::cli {
namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> sets;
  std::string run_dir;
  int64_t nproc = 1;  // data-parallel ranks started on this machine
};

std::string timestamp() {
  const std::time_t now = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", std::localtime(&now));
  return buf;
}

std::string default_run_dir(const train::ExperimentConfig& cfg, const std::string& config_path) {
  const std::string name =
      cfg.run.name.empty() ? fs::path(config_path).stem().string() : cfg.run.name;
  std::string dir = stoch::str("runs/", name, "-", timestamp());
  for (int i = 2; fs::exists(dir); ++i) dir = stoch::str("runs/", name, "-", timestamp(), "-", i);
  return dir;
}

// The last step of the finished run whose results (config.yaml, metrics.jsonl) `dir` holds
// without checkpoints, as a sweep counts them; nothing for any other folder, an unreadable one
// included (a run killed before its first checkpoint starts afresh).
std::optional<int64_t> finished_results(const std::string& dir) {
  if (!fs::is_regular_file(dir + "/config.yaml")) return std::nullopt;
  try {
    const Progress p = progress_of(dir, 0);
    if (p.results_only) return p.step;
  } catch (const InputError&) {
  }
  return std::nullopt;
}

// Which torchrun job this process belongs to: its run id (a fresh uuid under --standalone, the
// user's --rdzv-id otherwise), and where that is torchrun's default "none", also this host and
// the agent's pid (the same across the job's restarts); "" outside torchrun.
std::string torchrun_job() {
  const char* id = std::getenv("TORCHELASTIC_RUN_ID");
  if (id == nullptr || *id == '\0') return "";
  if (std::string(id) != "none") return id;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  return stoch::str(id, " ", host, " ", ::getppid());
}
const char* const kTorchrunJob = "/.torchrun";  // the job that created the run, in its folder

// torchrun --max-restarts starts the same `train` command again after a rank failed; with
// --run-dir, that folder holds the failed attempt's checkpoints. Only a run this job created
// counts: an older run in the folder was refused by attempt 0 and must stay refused.
bool restarted_by_torchrun(const TrainArgs& a, const std::string& run_dir) {
  const char* count = std::getenv("TORCHELASTIC_RESTART_COUNT");
  if (a.run_dir.empty() || count == nullptr || *count == '\0' || std::string(count) == "0")
    return false;
  const std::string ours = torchrun_job();
  const auto job = read_whole_file(run_dir + kTorchrunJob);
  return !ours.empty() && job && *job == ours + "\n";
}

// The restart continues the run the first attempt started, as `stoch resume` would, when this
// command still describes it: a config that now differs is refused, as a second train would be.
int continue_restarted_run(train::ExperimentConfig& cfg, const std::string& run_dir) {
  auto have = read_run_config(run_dir);
  if (const auto d = first_config_difference(have, cfg))
    throw InputError(stoch::str(run_dir, ": already holds checkpoints of another config (", d->key,
                                " is ", d->a, " there, ", d->b,
                                " in this command); a torchrun restart continues a run only "
                                "with the command that started it"));
  log::info(stoch::str("torchrun restart ", std::getenv("TORCHELASTIC_RESTART_COUNT"), ": ",
                       run_dir, " holds checkpoints; resuming it"));
  return resume_run(run_dir, {}, 1);
}

int train(const TrainArgs& a) {
  check_not_launched(a.nproc);
  auto cfg = train::parse_experiment(train::load_config(a.config, a.sets));
  const std::string run_dir = a.run_dir.empty() ? default_run_dir(cfg, a.config) : a.run_dir;
  if (!CheckpointStore(run_dir).steps().empty()) {
    if (restarted_by_torchrun(a, run_dir)) return continue_restarted_run(cfg, run_dir);
    throw InputError(stoch::str(run_dir,
                                ": already holds checkpoints; continue it with `stoch resume ",
                                shell_word(run_dir), "` or choose another --run-dir"));
  }
  // A run kept as results only (its checkpoints removed) would lose its metrics to a fresh start.
  if (const auto kept = finished_results(run_dir))
    throw InputError(stoch::str(run_dir, ": holds a finished run's results (metrics to step ",
                                *kept,
                                ", no checkpoints) that a fresh run would erase; choose another "
                                "--run-dir, or remove the folder to train it again"));
  // Once, by the process that starts the run: the launcher, or rank 0 under torchrun. Other
  // ranks would race rank 0's writes (its config.yaml.tmp.PID) into the folder.
  if (const char* rank = std::getenv("RANK"); rank == nullptr || std::string(rank) == "0")
    check_fresh_run_dir(run_dir);
  train::check_world_size_allowed(cfg, a.nproc, "--nproc");  // said once here, not per rank
  // The launcher picks the run dir, so that every rank uses the same one.
  if (a.nproc > 1)
    return launch_local_ranks(a.nproc,
                              rank_args({"train", a.config, "--run-dir", run_dir}, a.sets));
  std::optional<RunLock> lock;  // held until the run ends
  return train::run_training(cfg, run_dir, /*resume=*/false, [&] {
    make_output_dir(run_dir, "--run-dir");
    lock.emplace(run_dir);  // before anything in the folder changes
    // Again under the lock: another process (a second sweep over the same folder) may have
    // trained this run to a checkpoint since the check above, and starting afresh would erase it.
    if (!CheckpointStore(run_dir).steps().empty())
      throw InputError(stoch::str(run_dir, ": another process wrote checkpoints here meanwhile; ",
                                  "continue it with `stoch resume ", shell_word(run_dir), "`"));
    std::error_code ec;
    fs::remove(run_dir + "/metrics.jsonl", ec);  // a run dir without checkpoints starts afresh
    fs::remove(run_dir + "/rollbacks.json", ec);
    fs::remove_all(run_dir + "/tb", ec);  // TensorBoard would show the dead run's curves too
    noting_free_space(run_dir + "/log.txt", [&] { log::set_file(run_dir + "/log.txt"); });
    write_run_config(cfg, run_dir);
    if (const std::string job = torchrun_job(); !job.empty())
      write_file_durably(run_dir + kTorchrunJob, job + "\n");
    else
      fs::remove(run_dir + kTorchrunJob, ec);
    log::info(stoch::str("run dir ", run_dir));
  });
}

const bool registered =
    register_command("train", "start a run from a config", 10, [](CLI::App& cmd) -> CommandRun {
      auto a = std::make_shared<TrainArgs>();
      cmd.add_option("config", a->config, "YAML config file")->required();
      cmd.add_option("--set", a->sets, "override a key: KEY=VALUE (repeatable)");
      cmd.add_option("--run-dir", a->run_dir, "run directory (default runs/<name>-<time>)");
      cmd.add_option("--nproc", a->nproc,
                     "data-parallel processes on this machine, sharing its cores (CPU: Gloo)")
          ->check(integer_in(1));
      return [a] { return train(*a); };
    });

}  // namespace
}  // namespace stoch::cli
