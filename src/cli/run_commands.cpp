// train, resume, config: everything that reads a config and starts (or shows) a run.
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "cli/commands.h"
#include "cli/launch.h"
#include "cli/run_dir.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/output_dir.h"
#include "core/run_lock.h"
#include "core/strings.h"
#include "core/torch/checkpoint.h"
#include "core/torch/safetensors.h"
#include "train/experiment.h"
#include "train/rank_state.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace stoch::cli {
namespace {

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

// The same command for each rank of --nproc: the ranks get no --nproc themselves.
std::vector<std::string> rank_args(std::vector<std::string> head,
                                   const std::vector<std::string>& sets) {
  for (const auto& s : sets) {
    head.push_back("--set");
    head.push_back(s);
  }
  return head;
}

void write_config(train::ExperimentConfig& cfg, const std::string& run_dir) {
  const std::string header = "# Resolved by stoch: every key with its value; the run's identity.\n";
  write_file_durably(run_dir + "/config.yaml.tmp", header + train::to_yaml(cfg, true));
  fs::rename(run_dir + "/config.yaml.tmp", run_dir + "/config.yaml");
}

}  // namespace

int print_config(const ConfigArgs& a) {
  auto cfg = train::parse_experiment(train::load_config(a.config, a.sets));
  std::cout << train::to_yaml(cfg, !a.no_docs);
  return kExitOk;
}

int train(const TrainArgs& a) {
  check_not_launched(a.nproc);
  auto cfg = train::parse_experiment(train::load_config(a.config, a.sets));
  const std::string run_dir = a.run_dir.empty() ? default_run_dir(cfg, a.config) : a.run_dir;
  if (!CheckpointStore(run_dir).steps().empty())
    throw InputError(stoch::str(run_dir,
                                ": already holds checkpoints; continue it with `stoch resume ",
                                run_dir, "` or choose another --run-dir"));
  // The launcher picks the run dir, so that every rank uses the same one.
  if (a.nproc > 1)
    return launch_local_ranks(a.nproc,
                              rank_args({"train", a.config, "--run-dir", run_dir}, a.sets));
  std::optional<RunLock> lock;  // held until the run ends
  return train::run_training(cfg, run_dir, /*resume=*/false, [&] {
    make_output_dir(run_dir, "--run-dir");
    lock.emplace(run_dir);  // before anything in the folder changes
    std::error_code ec;
    fs::remove(run_dir + "/metrics.jsonl", ec);  // a run dir without checkpoints starts afresh
    fs::remove(run_dir + "/rollbacks.json", ec);
    log::set_file(run_dir + "/log.txt");
    write_config(cfg, run_dir);
    log::info(stoch::str("run dir ", run_dir));
  });
}

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
  if (a.nproc > 1) {
    train::check_resume_world_size(a.run_dir, a.nproc,
                                   cfg.train.grad_accum);  // said once here, not once per rank
    return launch_local_ranks(a.nproc, rank_args({"resume", a.run_dir}, a.sets));
  }
  std::optional<RunLock> lock;  // held until the run ends
  return train::run_training(cfg, a.run_dir, /*resume=*/true, [&] {
    lock.emplace(a.run_dir);  // before anything in the folder changes
    log::set_file(a.run_dir + "/log.txt");
    if (!a.sets.empty()) write_config(cfg, a.run_dir);
    log::info(stoch::str("resuming ", a.run_dir));
  });
}

}  // namespace stoch::cli
