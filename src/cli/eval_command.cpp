// eval: a task's held-out evaluation of one checkpoint, for every task: a language model's
// val/loss, a DQN policy's return over whole episodes, a value network's fit.
#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <cmath>
#include <iostream>
#include <memory>

#include "cli/checks.h"
#include "cli/command.h"
#include "cli/run_dir.h"
#include "core/config_tree.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/strings.h"
#include "core/torch/device.h"
#include "core/torch/model_tensors.h"
#include "train/experiment.h"
#include "train/task.h"

namespace stoch::cli {
namespace {

struct EvalArgs {
  std::string run_dir;
  int64_t checkpoint = -1;        // -1: newest complete
  std::vector<std::string> sets;  // for this evaluation only; the run's files stay as they are
};

int eval(const EvalArgs& a) {
  // The network is the checkpoint's: a model key (or another task) would read its weights into
  // another network whenever the shapes agree (another head count, activation), and a value key
  // would read its head's outputs on other bins, with another loss or transform; either way
  // another network's numbers, reported under the run's name.
  const auto under = [](const std::string& key, const char* section) {
    return key == section || key.rfind(std::string(section) + ".", 0) == 0;
  };
  for (const auto& set : a.sets) {
    const std::string key = config::split_assignment(set, "--set").first;
    if (key == "task" || under(key, "model") || under(key, "value"))
      throw InputError(stoch::str("--set ", set, ": ", key,
                                  " is the checkpoint's network; eval changes only how it is "
                                  "evaluated"));
  }
  auto cfg = read_run_config(a.run_dir, a.sets);
  // Keys the task declares fixed for evaluation (another game, another discount's bins): the
  // checkpoint's numbers would come out under the run's name for another setup.
  const auto fixed = train::list_keys(cfg).fixed_for_eval;
  for (const auto& set : a.sets) {
    const std::string key = config::split_assignment(set, "--set").first;
    if (const auto it = fixed.find(key); it != fixed.end())
      throw InputError(stoch::str("--set ", set, ": ", key, " ", it->second,
                                  "; eval changes only how it is evaluated"));
  }
  pin_libtorch_cpu_kernels(cfg.run.libtorch_kernels, "run.libtorch_kernels");  // before tensors
  const Checkpoint ckpt = load_run_checkpoint(a.run_dir, a.checkpoint);
  configure_threads(cfg.run.threads);
  auto task =
      registry<train::TaskEntry>().get(cfg.task, "task").make(cfg, resolve_device(cfg.run.device));
  load_model_tensors(task->model(), ckpt.tensors.at("model"), ckpt.dir + "/model.safetensors");
  task->load_evaluation_state(ckpt);
  // The protocol is keyed by the step, as in training: the same checkpoint gives the
  // evaluation its run logged.
  const auto metrics = task->evaluate(ckpt.step);
  std::cout << "step " << ckpt.step;
  for (const auto& [k, v] : metrics) std::cout << " " << k << "=" << format_number(v, 6);
  for (const auto& [k, v] : task->data_facts())  // whole numbers (a checksum) in full
    std::cout << " " << k << "="
              << (v == std::floor(v) && std::fabs(v) < 1e15
                      ? std::to_string(static_cast<int64_t>(v))
                      : format_number(v, 6));
  std::cout << "\n";
  const std::string summary = task->summary(metrics);
  if (!summary.empty()) log::info(summary);
  return kExitOk;
}

const bool registered = register_command(
    "eval", "evaluate a run's checkpoint with its task's protocol (held-out data, episodes)", 40,
    [](CLI::App& cmd) -> CommandRun {
      auto a = std::make_shared<EvalArgs>();
      cmd.add_option("run_dir", a->run_dir, "run directory")->required();
      cmd.add_option("--checkpoint", a->checkpoint, "checkpoint step")
          ->default_str("the newest complete")
          ->check(integer_in(0));
      cmd.add_option(
          "--set", a->sets,
          "override a key for this evaluation only, e.g. dqn.eval_episodes=100 (repeatable)");
      return [a] { return eval(*a); };
    });

}  // namespace
}  // namespace stoch::cli
