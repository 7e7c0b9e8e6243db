#include "train/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>

#include "core/errors.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/registry.h"
#include "core/signals.h"
#include "core/strings.h"
#include "core/torch/device.h"
#include "train/micro_batches.h"

namespace stoch::train {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The default generators of the CPU and, when training there, the CUDA device: dropout draws
// from them, so they are part of the exact state.
std::vector<std::pair<std::string, at::Generator>> generators(const c10::Device& device) {
  std::vector<std::pair<std::string, at::Generator>> g = {
      {"torch_cpu", at::globalContext().defaultGenerator(c10::Device(c10::kCPU))}};
  if (device.is_cuda()) g.emplace_back("torch_cuda", at::globalContext().defaultGenerator(device));
  return g;
}

TensorList rng_tensors(const c10::Device& device) {
  TensorList out;
  for (auto& [name, gen] : generators(device)) out.emplace_back(name, gen.get_state());
  return out;
}

void restore_rng(const TensorList& saved, const c10::Device& device) {
  std::map<std::string, torch::Tensor> by_name(saved.begin(), saved.end());
  for (auto& [name, gen] : generators(device)) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw InputError(stoch::str("checkpoint lacks RNG state ", name));
    gen.set_state(it->second);
  }
}

std::vector<std::pair<std::string, torch::Tensor>> named_params(torch::nn::Module& m) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value());
  return out;
}

// Scales gradients so their global L2 norm is at most max_norm, with multi-tensor kernels
// (one launch per step rather than several per parameter) and without a host sync.
// Returns the norm before clipping.
torch::Tensor clip_grad_norm(torch::nn::Module& model, double max_norm) {
  std::vector<torch::Tensor> grads;
  for (const auto& p : model.parameters())
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return torch::zeros({});
  const auto norms = at::_foreach_norm(grads, 2);
  const auto total = torch::linalg_vector_norm(torch::stack(norms), 2);
  const auto coef = torch::clamp_max(max_norm / (total + 1e-6), 1.0);
  at::_foreach_mul_(grads, coef);
  return total;
}

}  // namespace

TensorList model_tensors(torch::nn::Module& model) {
  TensorList out;
  for (const auto& p : model.named_parameters()) out.emplace_back("param." + p.key(), p.value());
  for (const auto& b : model.named_buffers()) out.emplace_back("buffer." + b.key(), b.value());
  return out;
}

void load_model_tensors(torch::nn::Module& model, const TensorList& saved) {
  std::map<std::string, torch::Tensor> by_name(saved.begin(), saved.end());
  torch::NoGradGuard no_grad;
  for (auto& [name, dst] : model_tensors(model)) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw InputError(stoch::str("checkpoint lacks model tensor ", name));
    if (it->second.sizes() != dst.sizes())
      throw InputError(stoch::str("checkpoint tensor ", name, " has shape ", it->second.sizes(),
                                  " but the model expects ", dst.sizes()));
    dst.copy_(it->second);
  }
}

int run_training(ExperimentConfig& cfg, const std::string& run_dir, bool resume,
                 const std::function<void()>& on_ready) {
  // Parallel micro-batch workers share the cores: each runs its kernels single-threaded.
  configure_threads(cfg.train.cpu_workers > 1 ? 1 : cfg.run.threads);
  torch::manual_seed(static_cast<uint64_t>(cfg.run.seed));
  const c10::Device device = resolve_device(cfg.run.device);
  const bool bf16 = use_bf16_autocast(cfg.run.precision, device);
  if (cfg.train.cpu_workers > 1 && !device.is_cpu())
    throw InputError(stoch::str("train.cpu_workers: ", cfg.train.cpu_workers,
                                " workers need run.device cpu, not ", device.str()));

  auto task = registry<TaskEntry>().get(cfg.task, "task").make(cfg, device);
  torch::nn::Module& model = task->model();
  AdamW optim(named_params(model), cfg.optim);
  CheckpointStore store(run_dir);
  std::vector<std::unique_ptr<hooks::Hook>> hook_list;
  for (const auto& spec : cfg.hooks) {
    const auto& entry = registry<hooks::HookEntry>().get(spec.name, "hooks.name");
    if ((entry.needs == "lm" && !task->lm_view()) ||
        (entry.needs == "value" && !task->value_view()))
      throw InputError(stoch::str("hooks: ", spec.name, " needs a ",
                                  entry.needs == "lm" ? "language model" : "value network",
                                  ", but task is ", cfg.task));
    hook_list.push_back(entry.make(*spec.params));
  }
  if (on_ready) on_ready();

  int64_t start_step = 0;
  double elapsed_before = 0.0;
  if (resume) {
    if (auto ckpt = store.load_latest()) {
      load_model_tensors(model, ckpt->tensors["model"]);
      optim.load_state(ckpt->tensors["optimizer"]);
      restore_rng(ckpt->tensors["rng"], device);
      task->load_state(*ckpt);
      for (size_t i = 0; i < hook_list.size(); ++i) {
        auto it = ckpt->tensors.find(stoch::str("hook", i));
        if (it != ckpt->tensors.end()) hook_list[i]->load_state(it->second);
      }
      start_step = ckpt->state.at("step").get<int64_t>();
      elapsed_before = ckpt->state.value("elapsed_s", 0.0);
      log::info(stoch::str("resumed from ", ckpt->dir, " (step ", start_step, ")"));
    } else {
      log::warn("no complete checkpoint found: starting from step 0");
    }
    truncate_metrics_after(run_dir + "/metrics.jsonl", start_step);
  }

  MetricsWriter metrics(run_dir + "/metrics.jsonl", cfg.log.tensorboard ? run_dir + "/tb" : "");
  if (resume) metrics.restart_after(start_step);
  const int64_t total = cfg.train.steps;
  const int64_t accum = cfg.train.grad_accum;
  const int64_t units_per_step = task->units_per_micro() * accum;
  const std::string rate_name = task->rate_name();

  if (start_step == 0) {
    const Metrics facts = task->data_facts();
    if (!facts.empty()) metrics.write(0, "data", facts);
  }
  log::info(stoch::str("device ", device.str(), bf16 ? " (bf16 autocast)" : " (fp32)", ", ",
                       at::get_num_threads(), " threads; ", units_per_step, " ",
                       rate_name.substr(0, rate_name.find("_per_s")), " per step; steps ",
                       start_step, " -> ", total));

  const auto save = [&](int64_t step) {
    Checkpoint c;
    c.step = step;
    c.tensors["model"] = model_tensors(model);
    c.tensors["optimizer"] = optim.state();
    c.tensors["rng"] = rng_tensors(device);
    c.state = {{"step", step},
               {"micro_batches", step * accum},
               {"tokens_seen", step * units_per_step},
               {"elapsed_s", elapsed_before},
               {"task", cfg.task}};
    task->save_state(c);
    for (size_t i = 0; i < hook_list.size(); ++i) {
      auto s = hook_list[i]->state();
      if (!s.empty()) c.tensors[stoch::str("hook", i)] = std::move(s);
    }
    const std::string dir = store.save(c, static_cast<int>(cfg.train.keep_last));
    log::info(stoch::str("checkpoint ", dir));
  };

  Metrics last_eval;
  const auto evaluate = [&](int64_t step) {
    last_eval = task->evaluate(step);
    metrics.write(step, "eval", last_eval);
    std::string line = stoch::str("eval step ", step);
    for (const auto& [k, v] : last_eval) line += stoch::str(" ", k, "=", format_number(v, 5));
    log::info(line);
  };

  if (start_step >= total) {
    log::info(stoch::str("nothing to do: the run already reached train.steps = ", total));
    return kExitOk;
  }

  const auto run_hook = [&](size_t i, int64_t step) {
    torch::NoGradGuard no_grad;
    model.eval();
    const hooks::HookContext ctx{step, &model, task->lm_view(), task->value_view()};
    const auto t0 = Clock::now();
    auto m = hook_list[i]->run(ctx);
    // What the diagnostic cost, so its overhead on training can be read from the metrics.
    m["diag/seconds/" + cfg.hooks[i].name] = seconds_since(t0);
    metrics.write(step, "diag", m);
    model.train();
  };
  // Every hook also measures the untrained model: the at-initialisation baseline.
  if (start_step == 0)
    for (size_t i = 0; i < hook_list.size(); ++i) run_hook(i, 0);

  MicroBatchRunner micro_batches(*task, accum, cfg.train.cpu_workers, bf16, device);
  install_stop_handlers();
  model.train();
  auto last_progress = Clock::now() - std::chrono::seconds(1);
  double interval_train_s = 0.0;
  int64_t interval_steps = 0;
  torch::Tensor interval_loss = torch::zeros({}, torch::TensorOptions().device(device));
  double recent_step_s = 0.0;

  for (int64_t step = start_step; step < total; ++step) {
    const auto t0 = Clock::now();
    const double lr = cfg.optim.lr * lr_multiplier(cfg.schedule, step, total);
    optim.zero_grad();
    const torch::Tensor step_loss = micro_batches.run(step);
    torch::Tensor grad_norm;
    if (cfg.train.grad_clip > 0) grad_norm = clip_grad_norm(model, cfg.train.grad_clip);
    optim.step(lr);
    interval_loss += step_loss / static_cast<double>(accum);
    const int64_t done = step + 1;
    ++interval_steps;
    const double dt = seconds_since(t0);
    interval_train_s += dt;
    elapsed_before += dt;
    recent_step_s = recent_step_s == 0.0 ? dt : 0.9 * recent_step_s + 0.1 * dt;

    if (done % cfg.log.every == 0 || done == total) {
      const double loss = interval_loss.item<double>() / static_cast<double>(interval_steps);
      const double rate = static_cast<double>(interval_steps * units_per_step) / interval_train_s;
      Metrics m = {{"loss", loss}, {"lr", lr}, {rate_name, rate}, {"elapsed_s", elapsed_before}};
      if (grad_norm.defined()) m["grad_norm"] = grad_norm.item<double>();
      for (const auto& [k, v] : task->train_metrics()) m[k] = v;
      metrics.write(done, "train", m);
      if (!std::isfinite(loss)) {
        log::error(stoch::str("loss is ", loss, " at step ", done, "; stopping (lower optim.lr?)"));
        return kExitFailure;
      }
      const std::string line = stoch::str(
          "step ", done, "/", total, " loss ", format_number(loss, 4), " lr ", format_number(lr, 3),
          " ", format_number(rate, 4), " ", rate_name.substr(0, rate_name.find("_per_s")),
          "/s eta ", format_duration(recent_step_s * static_cast<double>(total - done)));
      if (done % cfg.log.console_every == 0 || done == total)
        log::info(line);
      else if (seconds_since(last_progress) > 0.25) {
        log::progress(line);
        last_progress = Clock::now();
      }
      interval_loss.zero_();
      interval_steps = 0;
      interval_train_s = 0.0;
    }

    if ((cfg.train.eval_every > 0 && done % cfg.train.eval_every == 0) || done == total) {
      evaluate(done);
      model.train();
    }
    for (size_t i = 0; i < hook_list.size(); ++i)
      if (done % cfg.hooks[i].every == 0 || done == total) run_hook(i, done);
    if (const int sig = stop_requested()) {
      log::warn(stoch::str("received signal ", sig, ": writing a checkpoint of step ", done,
                           " and stopping"));
      save(done);
      return exit_code_for_signal(sig);
    }
    if ((cfg.train.ckpt_every > 0 && done % cfg.train.ckpt_every == 0) || done == total) save(done);
  }

  const std::string summary = task->summary(last_eval);
  if (!summary.empty()) log::info(summary);
  log::info(stoch::str("done: ", total, " steps in ", format_duration(elapsed_before),
                       " of training; run dir ", run_dir));
  return kExitOk;
}

}  // namespace stoch::train
