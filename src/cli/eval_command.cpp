// eval: a task's held-out evaluation of one checkpoint, for every task: a language model's
// val/loss, a DQN policy's return over whole episodes, a value network's fit.
#include <torch/torch.h>

#include <iostream>

#include "cli/commands.h"
#include "cli/run_dir.h"
#include "core/log.h"
#include "core/registry.h"
#include "core/strings.h"
#include "core/torch/device.h"
#include "core/torch/model_tensors.h"
#include "train/task.h"

namespace stoch::cli {

int eval(const EvalArgs& a) {
  auto cfg = read_run_config(a.run_dir, a.sets);
  const Checkpoint ckpt = load_run_checkpoint(a.run_dir, a.checkpoint);
  configure_threads(cfg.run.threads);
  auto task =
      registry<train::TaskEntry>().get(cfg.task, "task").make(cfg, resolve_device(cfg.run.device));
  load_model_tensors(task->model(), ckpt.tensors.at("model"), ckpt.dir + "/model.safetensors");
  task->load_state(ckpt);
  // The protocol is keyed by the step, as in training: the same checkpoint gives the
  // evaluation its run logged.
  const auto metrics = task->evaluate(ckpt.step);
  std::cout << "step " << ckpt.step;
  for (const auto& [k, v] : metrics) std::cout << " " << k << "=" << format_number(v, 6);
  for (const auto& [k, v] : task->data_facts()) std::cout << " " << k << "=" << format_number(v, 6);
  std::cout << "\n";
  const std::string summary = task->summary(metrics);
  if (!summary.empty()) log::info(summary);
  return kExitOk;
}

}  // namespace stoch::cli
